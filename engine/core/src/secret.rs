//! Secrets (PSKs, private keys, API secret keys) are held as [`SecretString`]: its `Debug`
//! prints a redaction marker, it has no `Display`, and reading it takes an explicit
//! [`ExposeSecret::expose_secret`] call that a reviewer can grep for.

pub use secrecy::{ExposeSecret, SecretString};

/// Builds a [`SecretString`] from anything string-like.
pub fn secret(value: impl Into<String>) -> SecretString {
    SecretString::from(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = secret("hunter2-very-secret");
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(s.expose_secret(), "hunter2-very-secret");
    }
}

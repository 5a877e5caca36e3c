//! `eddy passwd`: the argon2id hash of a password, for `[[mqtt.clients.users]]`.
//!
//! The password never appears in an argument (arguments show in `ps` and shell history):
//! it comes from the terminal without echo, or from standard input when asked to.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, bail};

use crate::cli::PasswdArgs;

/// Reads the password as `args` say and returns its PHC string.
pub fn run(args: &PasswdArgs) -> anyhow::Result<String> {
    let password = if args.password_stdin {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .context("reading the password from standard input")?;
        password_from_input(input)?
    } else if std::io::stdin().is_terminal() {
        prompt()?
    } else {
        bail!(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
        );
    };
    hash(&password)
}

/// The argon2id PHC string of `password`, as the broker verifies it.
pub fn hash(password: &[u8]) -> anyhow::Result<String> {
    Ok(eddy_broker::clients::hash_password(password)?)
}

/// Standard input without one trailing newline (`\n` or `\r\n`), so that `echo pw |` and
/// a file with one line both give `pw`. A second line is refused rather than guessed at.
fn password_from_input(mut input: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if input.last() == Some(&b'\n') {
        input.pop();
        if input.last() == Some(&b'\r') {
            input.pop();
        }
    }
    if input.contains(&b'\n') {
        bail!("the password must be one line");
    }
    if input.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(input)
}

/// Asks twice on the terminal, without echo.
fn prompt() -> anyhow::Result<Vec<u8>> {
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    if first.is_empty() {
        bail!("the password must not be empty");
    }
    let second = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first.into_bytes())
}

#[cfg(test)]
mod tests {
    use eddy_broker::clients::{ClientRefusal, ClientRules, ClientUser, ClientsSettings};

    use super::*;

    #[tokio::test]
    async fn the_printed_hash_admits_its_password_only() {
        let phc = hash(b"s3cret pass").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let rules = ClientRules::new(ClientsSettings {
            enabled: true,
            users: vec![ClientUser {
                username: "dash".into(),
                password_hash: phc,
            }],
            ..ClientsSettings::default()
        })
        .unwrap();
        assert!(
            rules
                .authenticate("c", Some("dash"), Some(b"s3cret pass"))
                .await
                .is_ok()
        );
        assert_eq!(
            rules
                .authenticate("c", Some("dash"), Some(b"s3cret pas"))
                .await,
            Err(ClientRefusal::BadCredentials)
        );
        assert!(hash(b"").is_err());
    }

    #[test]
    fn standard_input_loses_one_newline_only() {
        let read = |s: &str| password_from_input(s.as_bytes().to_vec());
        assert_eq!(read("pw\n").unwrap(), b"pw");
        assert_eq!(read("pw\r\n").unwrap(), b"pw");
        assert_eq!(read("pw").unwrap(), b"pw");
        assert_eq!(
            read(" pw \n").unwrap(),
            b" pw ",
            "spaces are the password's"
        );
        assert!(read("pw\n\n").is_err());
        assert!(read("a\nb").is_err());
        assert!(read("\n").is_err());
        assert!(read("").is_err());
    }
}

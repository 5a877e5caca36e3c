//! Generic MQTT clients ("open-broker mode"): who may connect besides Tencent devices, and
//! which topics they may use.
//!
//! Tencent devices are admitted by their product's key and limited to their own topic
//! classes ([`crate::device_auth`], [`crate::acl`]). Ordinary MQTT clients have neither, so
//! when this mode is enabled they are admitted by a configured username and argon2 password
//! hash (or anonymously, if allowed) and limited by an ordered list of ACL rules, the first
//! applicable rule deciding. This module owns only those decisions, as pure values checked
//! once at start-up ([`ClientRules::new`]); it never touches a connection, and it must never
//! let a client's own choice of client id or username widen what a rule grants (see
//! [`acl`]'s placeholder rules).
//!
//! ```text
//! ClientsSettings ──ClientRules::new (validated once)──► ClientRules
//!   CONNECT ──authenticate──► ClientIdentity ──permissions──► ClientPermissions
//!   PUBLISH ──may_publish──► bool        SUBSCRIBE ──may_subscribe──► bool
//! ```

mod acl;
mod password;

use std::collections::HashMap;
use std::sync::Arc;

use argon2::PasswordHash;

pub use acl::{ClientPermissions, PatternError};
pub use password::{HashError, hash_password};

use acl::CompiledRule;
use password::Verifier;

/// Open-broker settings, as the `eddy` binary maps them from `[mqtt.clients]`.
#[derive(Debug, Clone)]
pub struct ClientsSettings {
    /// Whether generic clients may connect at all.
    pub enabled: bool,
    /// Whether a client without a username is admitted (with no username in the ACL).
    pub anonymous: bool,
    /// The users who may connect with a password.
    pub users: Vec<ClientUser>,
    /// Topic rules, in order: the first applicable one decides.
    pub acl: Vec<AclRule>,
    /// What happens when no rule applies.
    pub acl_no_match: Permission,
}

impl Default for ClientsSettings {
    /// Off, nobody admitted, everything denied: the safe state before configuration.
    fn default() -> Self {
        Self {
            enabled: false,
            anonymous: false,
            users: Vec::new(),
            acl: Vec::new(),
            acl_no_match: Permission::Deny,
        }
    }
}

/// One user of the open broker.
#[derive(Clone)]
pub struct ClientUser {
    pub username: String,
    /// An argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), as printed by
    /// `eddy passwd`.
    pub password_hash: String,
}

/// The hash stays out of logs: it is not the password, but it can be attacked offline.
impl std::fmt::Debug for ClientUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientUser")
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// What a rule, or the absence of one, decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Allow,
    Deny,
}

/// Which operations a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Publish,
    Subscribe,
    /// Both publishing and subscribing.
    All,
}

impl AclAction {
    fn publish(self) -> bool {
        matches!(self, Self::Publish | Self::All)
    }

    fn subscribe(self) -> bool {
        matches!(self, Self::Subscribe | Self::All)
    }
}

/// One ACL rule.
///
/// `topics` are MQTT filters in which `%c` stands for the client id and `%u` for the
/// username (`%%` is a literal `%`). A rule with `username` or `client_id` set applies only
/// to that exact user or client; with both set, only when both match.
#[derive(Debug, Clone)]
pub struct AclRule {
    pub permission: Permission,
    pub action: AclAction,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub topics: Vec<String>,
}

/// Why the open-broker settings were refused. Each names the offending entry: `users[i]`
/// and `acl[i]` count from 0 in the order of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientsConfigError {
    #[error("users[{index}]: the username must not be empty")]
    EmptyUsername { index: usize },
    #[error("users[{index}] ({username:?}): the username is listed more than once")]
    DuplicateUser { index: usize, username: String },
    #[error("users[{index}] ({username:?}): password-hash is not usable: {reason}")]
    BadPasswordHash {
        index: usize,
        username: String,
        reason: String,
    },
    #[error("acl[{index}]: a rule needs at least one topic")]
    NoTopics { index: usize },
    #[error("acl[{index}]: topic {pattern:?} is not a valid pattern: {reason}")]
    BadTopicPattern {
        index: usize,
        pattern: String,
        reason: PatternError,
    },
    /// A rule for a user nobody can log in as never applies: most likely a typo, which in
    /// a deny rule would silently grant what it meant to refuse.
    #[error("acl[{index}]: username {username:?} is not one of the configured users")]
    UnknownRuleUser { index: usize, username: String },
    #[error("acl[{index}]: client-id must not be empty (empty client ids are refused)")]
    EmptyRuleClientId { index: usize },
}

/// Who a generic client is, once admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub client_id: String,
    /// `None` for an anonymous client.
    pub username: Option<String>,
}

/// Why a generic client's CONNECT is refused. Each variant's doc names the CONNACK code it
/// is meant for (MQTT 3 return code / MQTT 5 reason code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientRefusal {
    /// Open-broker mode is off (5 / 0x87 not authorized).
    #[error("generic MQTT clients are not enabled")]
    Disabled,
    /// An empty client id (2 / 0x85 client identifier not valid).
    #[error("the client id must not be empty")]
    ClientIdInvalid,
    /// No username, and anonymous clients are not admitted (5 / 0x87 not authorized).
    #[error("anonymous clients are not admitted")]
    AnonymousNotAllowed,
    /// Unknown user, missing or wrong password: deliberately one answer, in about the same
    /// time, so a client cannot learn which usernames exist (4 / 0x86).
    #[error("bad user name or password")]
    BadCredentials,
    /// The password check could not run (3 / 0x88 server unavailable).
    #[error("the password check failed to run")]
    Unavailable,
}

/// Validated open-broker rules: admission ([`Self::authenticate`]) and per-connection
/// topic permissions ([`Self::permissions`]). Build once, share behind an `Arc`.
pub struct ClientRules {
    enabled: bool,
    anonymous: bool,
    users: HashMap<String, Arc<PasswordHash>>,
    acl: Vec<CompiledRule>,
    acl_no_match: Permission,
    verifier: Verifier,
}

impl std::fmt::Debug for ClientRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRules")
            .field("enabled", &self.enabled)
            .field("anonymous", &self.anonymous)
            .field("users", &self.users.len())
            .field("acl", &self.acl.len())
            .field("acl_no_match", &self.acl_no_match)
            .finish_non_exhaustive()
    }
}

impl ClientRules {
    /// Checks every user and rule, whether or not the mode is enabled, so that turning it
    /// on never reveals a broken entry; returns the first problem found.
    pub fn new(settings: ClientsSettings) -> Result<Self, ClientsConfigError> {
        let mut users = HashMap::with_capacity(settings.users.len());
        // Unknown users are checked against the first user's hash, so that refusing them
        // costs what refusing a wrong password costs (see `Verifier::verify`).
        let mut decoy = None;
        for (index, user) in settings.users.into_iter().enumerate() {
            if user.username.is_empty() {
                return Err(ClientsConfigError::EmptyUsername { index });
            }
            let hash = password::parse_hash(&user.password_hash).map_err(|reason| {
                ClientsConfigError::BadPasswordHash {
                    index,
                    username: user.username.clone(),
                    reason,
                }
            })?;
            let hash = Arc::new(hash);
            decoy.get_or_insert_with(|| hash.clone());
            if users.insert(user.username.clone(), hash).is_some() {
                return Err(ClientsConfigError::DuplicateUser {
                    index,
                    username: user.username,
                });
            }
        }
        let acl = settings
            .acl
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                if let Some(username) = &rule.username
                    && !users.contains_key(username)
                {
                    return Err(ClientsConfigError::UnknownRuleUser {
                        index,
                        username: username.clone(),
                    });
                }
                CompiledRule::new(index, rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            enabled: settings.enabled,
            anonymous: settings.anonymous,
            users,
            acl,
            acl_no_match: settings.acl_no_match,
            verifier: Verifier::new(decoy),
        })
    }

    /// Whether generic clients may connect at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Decides a generic client's CONNECT.
    ///
    /// A client without a username is admitted only when anonymous clients are; its
    /// password, if it sent one, is ignored. Otherwise the username must be configured and
    /// the password must verify against its hash. The argon2 check runs on tokio's
    /// blocking pool (a few at a time, see `password`), and recent successes are
    /// remembered so a reconnecting fleet does not pay it on every CONNECT.
    pub async fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<ClientIdentity, ClientRefusal> {
        if !self.enabled {
            return Err(ClientRefusal::Disabled);
        }
        if client_id.is_empty() {
            return Err(ClientRefusal::ClientIdInvalid);
        }
        let Some(username) = username else {
            return if self.anonymous {
                Ok(ClientIdentity {
                    client_id: client_id.to_owned(),
                    username: None,
                })
            } else {
                Err(ClientRefusal::AnonymousNotAllowed)
            };
        };
        // Without a password there is nothing to check, for known and unknown users alike,
        // so answering at once tells a client nothing about which usernames exist.
        let password = password.ok_or(ClientRefusal::BadCredentials)?;
        let hash = self.users.get(username).cloned();
        if self.verifier.verify(username, password, hash).await? {
            Ok(ClientIdentity {
                client_id: client_id.to_owned(),
                username: Some(username.to_owned()),
            })
        } else {
            Err(ClientRefusal::BadCredentials)
        }
    }

    /// The topic permissions of one admitted client: the rules that apply to it, with its
    /// client id and username filled in. Computed once per connection.
    pub fn permissions(&self, identity: &ClientIdentity) -> ClientPermissions {
        ClientPermissions::new(&self.acl, identity, self.acl_no_match)
    }
}

#[cfg(test)]
mod tests;

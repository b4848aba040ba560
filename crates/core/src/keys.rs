//! API keys: what a key may do (its [`Role`]), how tokens are made and how they are stored.
//!
//! A token is 32 bytes from the OS's CSPRNG, shown once when the key is created. Only its
//! SHA-256 is stored. A fast hash is the right tool here (unlike for passwords): a 256-bit
//! random token cannot be guessed or brute-forced from its hash however fast the hash is, so a
//! deliberately slow hash (argon2, bcrypt) would buy nothing and would cost milliseconds on
//! every request. Looking a hash up in a map is not a timing leak worth guarding either:
//! timing could at best reveal bits of the hash, and SHA-256 is preimage-resistant.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::StoreError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: manage functions and keys, run comparisons, invoke, read.
    Admin,
    /// Invoke functions and read (every GET but the key list); no changes, no comparisons.
    Invoke,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::Invoke];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Invoke => "invoke",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "invoke" => Ok(Role::Invoke),
            other => Err(format!("unknown role `{other}` (expected admin or invoke)")),
        }
    }
}

/// A key as listed: never its token, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Updated lazily (at most about once a minute per key), so it is approximate.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// A key as the store holds it: the listing plus the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key: ApiKey,
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
}

/// Prefix of every token, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "fnbox_";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed (should never happen).
    #[error("no randomness available for a new key: {0}")]
    Random(String),
}

/// A new key and its token. The token exists only here: store [`StoredKey`], show the token once.
pub struct NewKey {
    pub stored: StoredKey,
    pub token: String,
}

impl NewKey {
    pub fn generate(name: &str, role: Role, now: DateTime<Utc>) -> Result<NewKey, KeyError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
        let stored = StoredKey {
            key: ApiKey { id: Uuid::now_v7(), name: name.to_owned(), role, created_at: now, last_used_at: None, revoked: false },
            token_hash: hash_token(&token),
        };
        Ok(NewKey { stored, token })
    }
}

/// Lowercase hex SHA-256 of a token: what is stored and what a presented token is looked up by.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Key names are for people (`ci`, `grafana`, `alice laptop`): 1 to 64 of letters, digits,
/// spaces and `._-@:/`, starting and ending with neither a space nor punctuation other than
/// those. [`KEY_NAME_PATTERN`] says the same for the OpenAPI document.
pub fn validate_key_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 64 {
        return Err("must be 1 to 64 characters long".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-@:/".contains(c);
    if !name.chars().all(allowed) {
        return Err("may contain only letters, digits, spaces and `._-@:/`".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || name.ends_with(' ') {
        return Err("must start with a letter or digit and not end with a space".into());
    }
    Ok(())
}

/// [`validate_key_name`] as a regular expression.
pub const KEY_NAME_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9 ._@:/-]{0,62}[A-Za-z0-9._@:/-])?$";

/// Where keys live. Separate from [`crate::Store`] so the engine never sees keys and the
/// HTTP layer never sees functions' storage; the SQLite store implements both.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Marks a key revoked. `Ok(false)` when there is no such key; revoking twice is fine.
    async fn revoke_key(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Records when keys were last used (a batch, written lazily by the server).
    async fn touch_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// A counter bumped by every insert and revoke (not by touches): a server polls it to see
    /// changes made by `fnbox keys` against the same data dir.
    async fn keys_version(&self) -> Result<i64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let now = Utc::now();
        let a = NewKey::generate("a", Role::Admin, now).expect("key");
        let b = NewKey::generate("b", Role::Invoke, now).expect("key");
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a.token, b.token);
        assert_eq!(a.stored.token_hash, hash_token(&a.token));
        assert_eq!(a.stored.token_hash.len(), 64);
        assert!(!a.stored.token_hash.contains(&a.token[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn roles_and_names() {
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
        assert!(validate_key_name("ci bot").is_ok());
        assert!(validate_key_name("grafana@prod/eu-1").is_ok());
        assert!(validate_key_name("x ").is_err());
        assert!(validate_key_name("-x").is_err());
        assert!(validate_key_name("é").is_err());
        assert!(validate_key_name("").is_err());
        assert!(validate_key_name(" x").is_err());
        assert!(validate_key_name("a\nb").is_err());
        assert!(validate_key_name(&"x".repeat(65)).is_err());
    }
}

//! The reconnect secret: what proves that a new connection is a place's own peer. It is
//! made when the place is made (256 random bits), sent to the peer in its `join` answer,
//! and kept here only as the first 128 bits of its SHA-256, compared in constant time:
//! finding another secret with the same 128 bits takes about 2^128 tries, and the
//! record of every peer stays small (docs/SERVER.md, "Memory per connection").

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A reconnect secret in clear: what the peer's join answer carries. Its `Debug` hides it,
/// so no log line can show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret a client presented.
    pub fn presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The text, for the join answer.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret's digest, as a place (and a removed peer's tombstone) keeps it.
#[derive(Clone, Copy)]
pub struct SecretHash([u8; 16]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed, not even as a digest.
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Self(first)
    }

    /// A new random secret (256 bits, 64 hex characters) and its digest.
    pub fn generate() -> (Secret, SecretHash) {
        let bytes: [u8; 32] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hash = Self::of(&secret);
        (Secret(secret), hash)
    }

    /// Whether `presented` is the secret, in time independent of where they differ.
    pub fn matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(Self::of(p).0.ct_eq(&self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches() {
        let (s, h) = SecretHash::generate();
        assert_eq!(format!("{s:?}"), "Secret(..)");
        let s = s.as_str();
        assert_eq!(s.len(), 64);
        assert!(h.matches(Some(s)));
        assert!(!h.matches(None));
        assert!(!h.matches(Some("")));
        assert!(!h.matches(Some(&s[..63])));
        assert!(!h.matches(Some(SecretHash::generate().0.as_str())));
        assert_eq!(format!("{h:?}"), "SecretHash(..)");
    }
}

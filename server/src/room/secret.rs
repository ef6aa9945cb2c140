//! The reconnect secret: what proves that a new connection is a place's own peer. It is
//! made when the place is made (256 random bits), sent to the peer in its `join` answer,
//! and kept here only as the first 128 bits of its SHA-256, compared in constant time:
//! finding another secret with the same 128 bits takes about 2^128 tries, and the
//! record of every peer stays small (docs/SERVER.md, "Memory per connection").

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A reconnect secret in clear: what the peer's join answer carries. Its `Debug` hides it,
/// so no log line can show it. (Serialized as its text: a cluster's nodes pass it between
/// them, see `crate::cluster::wire`.)
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
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

/// A secret's digest, as a place (and a removed peer's tombstone) keeps it. Serialized as
/// 32 hex characters: a cluster's room mirror carries it to the room's next owner.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 16]);

impl serde::Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }
}

impl<'de> serde::Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("a secret digest is 32 hex characters");
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed, not even as a digest.
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
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

    #[test]
    fn a_digest_crosses_nodes_intact() {
        let (s, h) = SecretHash::generate();
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json.len(), 34);
        let back: SecretHash = serde_json::from_str(&json).unwrap();
        assert!(back == h && back.matches(Some(s.as_str())));
        assert!(serde_json::from_str::<SecretHash>("\"zz\"").is_err());
        assert!(serde_json::from_str::<SecretHash>(&format!("\"{}\"", "zz".repeat(16))).is_err());
    }
}

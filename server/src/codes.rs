//! Room codes: a short text that stands for a (room, role) pair and is exchanged for an
//! app token at `POST /v2/token`. A code is a bearer credential (a host code lets anyone
//! end the room), so it is long enough not to be guessed online (16 random lowercase
//! letters, 75 bits, on top of the per-address throttle) and the database keeps only its
//! SHA-256: the text is shown once, when the code is issued.

use sha2::{Digest, Sha256};

/// Random letters in a code; 26^16 is about 2^75.
pub const LETTERS: usize = 16;

/// A new code: four groups of four lowercase letters, `abcd-efgh-ijkl-mnop`.
pub fn generate() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut out = String::with_capacity(LETTERS + 3);
    for i in 0..LETTERS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(b'a' + rng.random_range(0..26u8)));
    }
    out
}

/// What is stored and looked up for a code: the hex SHA-256 of its text as typed, less
/// surrounding spaces and case.
pub fn hash(code: &str) -> String {
    let digest = Sha256::digest(code.trim().to_ascii_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_random_and_hashed_ignoring_case() {
        let a = generate();
        assert_eq!(a.len(), LETTERS + 3);
        assert_eq!(a.chars().filter(|c| *c == '-').count(), 3);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        assert_ne!(a, generate());
        assert_eq!(hash(&a), hash(&format!(" {} ", a.to_uppercase())));
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&generate()));
    }
}

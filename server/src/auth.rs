//! Auth and management tokens: HS256 JWTs with the claims 100ms uses, and the secret
//! they are signed with.

use crate::clock::now_secs;
use crate::datadir;
use crate::error::Error;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A peer's token for the WebSocket: names room, user and role.
    App,
    /// A back end's token for the REST API.
    Management,
}

/// JWT claims, as 100ms has them. `room_id`, `user_id` and `role` are empty in
/// management tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Which app (account) the token belongs to.
    pub access_key: String,
    /// The room an app token is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room_id: String,
    /// The user an app token is for (shown to others as `info.user_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    /// The role of an app token (a role of the template).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// `"app"` or `"management"`.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// Always 2.
    pub version: u32,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid before, Unix seconds.
    pub nbf: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}


/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    access_key: String,
    ttl_secs: u64,
}

impl TokenKeys {
    /// Keys for `secret`; minted tokens carry `access_key` and live `ttl_secs`.
    pub fn new(secret: &[u8], access_key: &str, ttl_secs: u64) -> Self {
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            access_key: access_key.to_owned(),
            ttl_secs,
        }
    }

    fn claims(&self, token_type: TokenType, room: &str, user: &str, role: &str) -> Claims {
        let now = now_secs();
        Claims {
            access_key: self.access_key.clone(),
            room_id: room.to_owned(),
            user_id: user.to_owned(),
            role: role.to_owned(),
            token_type,
            version: 2,
            iat: now,
            // Slack for clocks that differ a little between minting and checking.
            nbf: now.saturating_sub(5),
            exp: now + self.ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Signs arbitrary claims (tests use this for expired and odd tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.enc).map_err(|e| Error::Internal(format!("signing: {e}")))
    }

    /// An app token for `user` as `role` in `room`.
    pub fn app_token(&self, room: &str, user: &str, role: &str) -> Result<String, Error> {
        self.sign(&self.claims(TokenType::App, room, user, role))
    }

    /// A management token for the REST API.
    pub fn management_token(&self) -> Result<String, Error> {
        self.sign(&self.claims(TokenType::Management, "", "", ""))
    }

    /// Verifies signature, algorithm, `exp` and `nbf`, that the token is for this
    /// server's `access_key` and has `want` type. Every refusal is
    /// [`Error::Unauthorized`] (401 on the wire).
    pub fn verify(&self, token: &str, want: TokenType) -> Result<Claims, Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf"]);
        let data = decode::<Claims>(token, &self.dec, &v).map_err(|e| Error::Unauthorized(format!("invalid token: {e}")))?;
        let c = data.claims;
        if c.access_key != self.access_key {
            return Err(Error::Unauthorized("the token's access_key is not this server's (access_key in its config)".into()));
        }
        if c.token_type != want {
            return Err(Error::Unauthorized(match want {
                TokenType::App => "a management token cannot join a room; use an app token".into(),
                TokenType::Management => "an app token cannot call the REST API; use a management token".into(),
            }));
        }
        if want == TokenType::App && (c.room_id.is_empty() || c.user_id.is_empty() || c.role.is_empty()) {
            return Err(Error::Unauthorized("app token lacks room_id, user_id or role".into()));
        }
        Ok(c)
    }
}

/// The shortest secret accepted, in bytes. HS256 keys shorter than the hash (32 bytes)
/// weaken it, and a short human-chosen secret can be guessed offline from one token.
pub const MIN_SECRET_BYTES: usize = 32;

fn check_secret(secret: &str, source: &str) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(Error::Config(format!("the secret from {source} is empty; give one of at least {MIN_SECRET_BYTES} bytes")));
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::Config(format!(
            "the secret from {source} is {} bytes; at least {MIN_SECRET_BYTES} are required (e.g. `head -c 32 /dev/urandom | xxd -p -c 64`)",
            secret.len()
        )));
    }
    Ok(())
}

/// Finds the secret: env `HMS_SECRET`, else the config's `secret`, else
/// `<data_dir>/secret`, generated (32 random bytes, hex, mode 0600) when missing. A secret
/// that is empty or shorter than [`MIN_SECRET_BYTES`] is refused wherever it comes from.
/// Processes racing to generate the file all end up with the one that was saved.
pub fn resolve_secret(config_secret: Option<&str>, data_dir: &Path) -> Result<String, Error> {
    if let Some(s) = std::env::var_os("HMS_SECRET") {
        let s = s.into_string().map_err(|_| Error::Config("HMS_SECRET is not valid UTF-8".into()))?;
        check_secret(&s, "HMS_SECRET")?;
        return Ok(s);
    }
    if let Some(s) = config_secret {
        check_secret(s, "the config file's `secret`")?;
        return Ok(s.to_owned());
    }
    let path = data_dir.join("secret");
    let read = |path: &Path| -> Result<Option<String>, Error> {
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let s = s.trim().to_owned();
                check_secret(&s, &format!("{} (delete the file to generate a new one)", path.display()))?;
                Ok(Some(s))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Config(format!("reading {}: {e}", path.display()))),
        }
    };
    if let Some(s) = read(&path)? {
        return Ok(s);
    }
    datadir::ensure_private_dir(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if datadir::create_once(data_dir, "secret", &secret)? {
        return Ok(secret);
    }
    // Another process created it first: use theirs.
    read(&path)?.ok_or_else(|| Error::Config(format!("{} vanished while being created", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_management_tokens_round_trip_and_are_not_interchangeable() {
        let k = TokenKeys::new(b"s3cret", "ak", 60);
        let app = k.app_token("r1", "u1", "host").unwrap();
        let c = k.verify(&app, TokenType::App).unwrap();
        assert_eq!((c.room_id.as_str(), c.user_id.as_str(), c.role.as_str(), c.version), ("r1", "u1", "host", 2));
        assert!(k.verify(&app, TokenType::Management).is_err());
        let m = k.management_token().unwrap();
        assert!(k.verify(&m, TokenType::Management).is_ok());
        assert!(k.verify(&m, TokenType::App).is_err());
    }

    #[test]
    fn forged_and_expired_tokens_fail() {
        let k = TokenKeys::new(b"s3cret", "ak", 60);
        let other = TokenKeys::new(b"other", "ak", 60);
        assert!(k.verify(&other.app_token("r", "u", "host").unwrap(), TokenType::App).is_err());
        let mut c = k.claims(TokenType::App, "r", "u", "host");
        c.exp = now_secs() - 3600;
        c.iat = c.exp - 60;
        c.nbf = c.iat;
        assert!(k.verify(&k.sign(&c).unwrap(), TokenType::App).is_err());
        assert!(k.verify("not.a.jwt", TokenType::App).is_err());
        let other_app = TokenKeys::new(b"s3cret", "another", 60);
        assert!(k.verify(&other_app.app_token("r", "u", "host").unwrap(), TokenType::App).is_err(), "another access_key");
    }

    #[test]
    fn secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        // Only meaningful when the env var is not set in the test environment.
        if std::env::var("HMS_SECRET").is_ok() {
            return;
        }
        let a = resolve_secret(None, dir.path()).unwrap();
        let b = resolve_secret(None, dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let long = "c".repeat(MIN_SECRET_BYTES);
        assert_eq!(resolve_secret(Some(&long), dir.path()).unwrap(), long);
        assert!(resolve_secret(Some("cfg"), dir.path()).is_err(), "too short");
    }
}

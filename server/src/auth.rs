//! Auth and management tokens: HS256 JWTs with the claims 100ms uses, and the secret
//! they are signed with.

use crate::clock::now_secs;
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

    /// Verifies signature, algorithm, `exp` and `nbf`, and that the token has `want` type.
    /// Every refusal is [`Error::Unauthorized`] (401 on the wire).
    pub fn verify(&self, token: &str, want: TokenType) -> Result<Claims, Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf"]);
        let data = decode::<Claims>(token, &self.dec, &v).map_err(|e| Error::Unauthorized(format!("invalid token: {e}")))?;
        let c = data.claims;
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

/// Finds the secret: env `HMS_SECRET`, else the config's `secret`, else
/// `<data_dir>/secret`, generated (32 random bytes, hex, mode 0600) when missing.
pub fn resolve_secret(config_secret: Option<&str>, data_dir: &Path) -> Result<String, Error> {
    if let Ok(s) = std::env::var("HMS_SECRET") {
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(s) = config_secret.filter(|s| !s.is_empty()) {
        return Ok(s.to_owned());
    }
    let path = data_dir.join("secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Config(format!("reading {}: {e}", path.display()))),
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::Config(format!("creating {}: {e}", data_dir.display())))?;
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).map_err(|e| Error::Config(format!("writing {}: {e}", path.display())))?;
    Ok(secret)
}

/// Writes a file readable only by its owner. `create_new` so that two processes
/// racing to create the secret do not overwrite each other: the loser reads the winner's.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
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
        assert_eq!(resolve_secret(Some("cfg"), dir.path()).unwrap(), "cfg");
    }
}

//! Auth tokens for the load peers: HS256 JWTs with 100ms's claims, minted with the
//! server's secret, or asked from the server's own `token` command.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Mint HS256 JWTs locally with this secret (what the server checks them with).
    Secret(String),
    /// Run `<bin> token --room R --user U --role ROLE --data-dir DIR` with `HMS_SECRET`
    /// set: exactly the server's own minting, so nothing about the claims can drift.
    Cli {
        /// The server binary.
        bin: PathBuf,
        /// The server's data dir.
        data_dir: PathBuf,
        /// The secret the server was started with.
        secret: String,
    },
}

impl TokenSource {
    /// An auth token for `user` with `role` in `room`.
    pub async fn token(&self, room: &str, user: &str, role: &str) -> Result<String, String> {
        match self {
            TokenSource::Secret(secret) => mint_app_token(secret, room, user, role, now_s()),
            TokenSource::Cli { bin, data_dir, secret } => cli_token(bin, data_dir, secret, room, user, role).await,
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Claims of a 100ms app token (`type: "app"`, `version: 2`), valid for a day.
pub fn app_claims(room: &str, user: &str, role: &str, now: u64) -> serde_json::Value {
    serde_json::json!({
        // The server's default access_key: it refuses tokens with another one.
        "access_key": "hms-local",
        "room_id": room,
        "user_id": user,
        "role": role,
        "type": "app",
        "version": 2,
        "iat": now,
        // A little slack for clock granularity between minting and checking.
        "nbf": now.saturating_sub(5),
        "exp": now + 86_400,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// Signs the JSON `payload` as an HS256 JWT with `secret`.
pub fn sign_hs256(secret: &[u8], payload: &[u8]) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| format!("hmac key: {e}"))?;
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// An app token for `user` as `role` in `room`, minted at `now` (Unix seconds).
pub fn mint_app_token(secret: &str, room: &str, user: &str, role: &str, now: u64) -> Result<String, String> {
    let payload = serde_json::to_vec(&app_claims(room, user, role, now)).map_err(|e| format!("claims: {e}"))?;
    sign_hs256(secret.as_bytes(), &payload)
}

async fn cli_token(bin: &Path, data_dir: &Path, secret: &str, room: &str, user: &str, role: &str) -> Result<String, String> {
    let out = tokio::process::Command::new(bin)
        .args(["token", "--room", room, "--user", user, "--role", role, "--data-dir"])
        .arg(data_dir)
        .env("HMS_SECRET", secret)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running {} token: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} token exited with {}: {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The token is the last non-empty line (in case the command says anything before it).
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} token printed nothing", bin.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_matches_the_well_known_example() {
        // The example token of RFC 7519-style tutorials (jwt.io), secret "your-256-bit-secret".
        let payload = br#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#;
        let token = sign_hs256(b"your-256-bit-secret", payload).unwrap();
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }

    #[test]
    fn app_token_carries_the_100ms_claims() {
        let token = mint_app_token("s3cret", "room-1", "alice", "host", 1_000_000).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["room_id"], "room-1");
        assert_eq!(claims["user_id"], "alice");
        assert_eq!(claims["role"], "host");
        assert_eq!(claims["type"], "app");
        assert_eq!(claims["version"], 2);
        assert_eq!(claims["iat"], 1_000_000);
        assert!(claims["exp"].as_u64().unwrap() > 1_000_000);
        assert!(claims["jti"].as_str().unwrap().len() >= 32);
    }
}

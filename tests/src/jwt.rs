//! A stand-in OAuth authorization server for tests: it signs JWTs (ES256
//! with a key generated at test time, or HS256 with a shared secret),
//! publishes its JWKS as a file, and can serve the JWKS over HTTP.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Issuer URL the test tokens carry.
pub const ISSUER: &str = "https://idp.test";
/// Audience the test tokens carry.
pub const AUDIENCE: &str = "https://mcp.test/mcp";

/// Signs test tokens.
pub struct TestIssuer {
    kid: String,
    es256: EncodingKey,
    jwk: Value,
    hs256_secret: String,
    dir: tempfile::TempDir,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl TestIssuer {
    /// A fresh ES256 key (`kid`) and a random HS256 secret.
    pub fn new(kid: &str) -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let raw = key.public_key_raw();
        // Uncompressed point: 0x04 || X || Y.
        let (x, y) = raw
            .get(1..33)
            .zip(raw.get(33..65))
            .context("unexpected EC public key")?;
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        let hs256_secret = crate::jwt::random_hex(32);
        let issuer = TestIssuer {
            kid: kid.to_string(),
            es256: EncodingKey::from_ec_der(&key.serialize_der()),
            jwk,
            hs256_secret,
            dir: tempfile::Builder::new().prefix("pgmcp-idp-").tempdir()?,
        };
        std::fs::write(issuer.jwks_path(), issuer.jwks().to_string())?;
        std::fs::write(issuer.secret_path(), &issuer.hs256_secret)?;
        Ok(issuer)
    }

    /// The JWKS document (the public ES256 key).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A file holding [`TestIssuer::jwks`].
    pub fn jwks_path(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    /// A file holding the HS256 secret.
    pub fn secret_path(&self) -> PathBuf {
        self.dir.path().join("hs256.secret")
    }

    /// Gateway flags that trust this issuer's JWKS file.
    pub fn gateway_flags(&self) -> Vec<String> {
        vec![
            "--jwt-issuer".into(),
            ISSUER.into(),
            "--jwt-audience".into(),
            AUDIENCE.into(),
            "--jwt-jwks-file".into(),
            self.jwks_path().display().to_string(),
            "--jwt-hs256-secret-file".into(),
            self.secret_path().display().to_string(),
        ]
    }

    /// Claims of a valid token for `sub` with `scope`, valid for an hour.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
            "iat": now(), "nbf": now() - 5, "exp": now() + 3600,
        })
    }

    /// `claims` signed with ES256.
    pub fn es256(&self, claims: &Value) -> Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.es256)?)
    }

    /// `claims` signed with HS256 and the shared secret.
    pub fn hs256(&self, claims: &Value) -> Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(self.hs256_secret.as_bytes()),
        )?)
    }
}

/// `n` random bytes as hex (from the OS, via a fresh hasher seed).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(2 * n);
    while out.len() < 2 * n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(2 * n);
    out
}

/// A tiny HTTP server answering every request with the current `body`
/// (as JSON), counting requests. For `--jwt-jwks-url`.
pub struct StaticServer {
    pub url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    pub async fn start(body: String) -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/jwks.json", listener.local_addr()?);
        let body = Arc::new(Mutex::new(body));
        let hits = Arc::new(Mutex::new(0usize));
        let (b, h) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let _ = sock.read(&mut buf).await;
                    if let Ok(mut n) = h.lock() {
                        *n += 1;
                    }
                    let text = b.lock().map(|s| s.clone()).unwrap_or_default();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Ok(StaticServer {
            url,
            body,
            hits,
            task,
        })
    }

    /// Replaces what the server answers.
    pub fn set(&self, body: String) {
        if let Ok(mut b) = self.body.lock() {
            *b = body;
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.lock().map(|n| *n).unwrap_or(0)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

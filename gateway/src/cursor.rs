//! Pagination cursors: self-contained and signed.
//!
//! A cursor carries everything needed to serve the next page — database,
//! SQL, parameters, how many rows were already returned, page size and an
//! expiry — and an HMAC-SHA256 over it with a key shared by all gateways. So
//! any gateway can continue any caller's paging, against any worker, and a
//! cursor that was altered, made with another key, or expired is refused.
//!
//! Format: `base64url(json payload) "." base64url(hmac)`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::errors::GatewayError;

type HmacSha256 = Hmac<Sha256>;

/// What a cursor says about the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// Format version.
    pub v: u8,
    /// Target database ("" = the only one).
    pub db: String,
    pub sql: String,
    pub params: Vec<serde_json::Value>,
    /// Rows already returned: the next page starts after them.
    pub offset: u64,
    /// Rows per page.
    pub page_size: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Signs and checks cursors.
pub struct CursorKey {
    key: Vec<u8>,
    ttl: Duration,
}

impl CursorKey {
    pub fn new(key: Vec<u8>, ttl: Duration) -> Self {
        CursorKey { key, ttl }
    }

    /// A random key, for a gateway that was given none: its cursors work
    /// only on itself.
    pub fn random(ttl: Duration) -> Self {
        CursorKey {
            key: rand::random::<[u8; 32]>().to_vec(),
            ttl,
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// A cursor for the page after `page` (whose `exp` is set here).
    pub fn sign(&self, mut page: Page) -> String {
        page.v = 1;
        page.exp = now_secs() + self.ttl.as_secs();
        self.seal(&serde_json::to_vec(&page).unwrap_or_default())
    }

    /// `base64url(json) "." base64url(hmac)` for any payload bytes (the
    /// fuzzing entry point signs arbitrary payloads with it, to reach the
    /// decoding behind the signature check).
    pub(crate) fn seal(&self, json: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Checks a cursor's signature and expiry and returns its page.
    pub fn verify(&self, cursor: &str) -> Result<Page, GatewayError> {
        let bad = || {
            GatewayError::invalid(
                "invalid cursor: it was altered, truncated, or issued by a gateway with a different cursor key; \
                 pass next_cursor exactly as returned, or start again without a cursor",
            )
        };
        let (payload, sig) = cursor.trim().split_once('.').ok_or_else(bad)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| bad())?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| bad())?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
        let page: Page = serde_json::from_slice(&json).map_err(|_| bad())?;
        if page.v != 1 {
            return Err(bad());
        }
        if page.exp < now_secs() {
            return Err(GatewayError::invalid(
                "the cursor has expired; run the query again without a cursor to start over",
            ));
        }
        Ok(page)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Page {
        Page {
            v: 1,
            db: "app".into(),
            sql: "SELECT 1".into(),
            params: vec![serde_json::json!(1)],
            offset: 100,
            page_size: 100,
            exp: 0,
        }
    }

    #[test]
    fn round_trip() -> Result<(), GatewayError> {
        let key = CursorKey::new(b"k".to_vec(), Duration::from_secs(60));
        let c = key.sign(page());
        let p = key.verify(&c)?;
        assert_eq!(p.offset, 100);
        assert_eq!(p.sql, "SELECT 1");
        Ok(())
    }

    #[test]
    fn tampered_foreign_and_expired_cursors_are_refused() {
        let key = CursorKey::new(b"k".to_vec(), Duration::from_secs(60));
        let c = key.sign(page());
        let (payload, sig) = c.split_once('.').unwrap_or_default();
        let mut forged = page();
        forged.offset = 0;
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        assert!(key.verify(&format!("{forged_payload}.{sig}")).is_err());
        assert!(key.verify(&format!("{payload}x.{sig}")).is_err());
        assert!(key.verify("garbage").is_err());
        let other = CursorKey::new(b"other".to_vec(), Duration::from_secs(60));
        assert!(other.verify(&c).is_err());
        let expired = CursorKey::new(b"k".to_vec(), Duration::from_secs(0));
        let mut old = page();
        old.exp = 1;
        let c = expired.sign(old);
        std::thread::sleep(Duration::from_millis(1100));
        assert!(expired.verify(&c).is_err());
    }
}

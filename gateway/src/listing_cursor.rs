//! Cursors of catalog listings (`list_tables`, `resources/list`).
//!
//! A cursor is the position after the last table of a page — (database,
//! schema, table) — plus a fingerprint of the listing's filters, as
//! base64url JSON. Any gateway can continue from it, and the position is a
//! keyset, so tables created or dropped between pages neither shift nor
//! repeat the others. Catalog names are not secret, so the cursor is not
//! signed; a cursor that does not decode, or that belongs to another
//! listing, is refused with an explanation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;

/// Where a listing continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingCursor {
    /// Format version.
    v: u8,
    /// Which listing issued it: "tables" or "resources".
    l: String,
    /// Fingerprint of the filters the listing was called with.
    f: String,
    /// Database of the last item.
    pub d: String,
    /// Schema and name of the last item.
    pub s: String,
    pub t: String,
}

/// Longest cursor accepted, in bytes.
const MAX_CURSOR_BYTES: usize = 4096;

impl ListingCursor {
    pub fn new(listing: &str, filters: &str, database: &str, schema: &str, table: &str) -> Self {
        ListingCursor {
            v: 1,
            l: listing.to_string(),
            f: fingerprint(filters),
            d: database.to_string(),
            s: schema.to_string(),
            t: table.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor issued by `listing` for the same `filters`.
    pub fn decode(cursor: &str, listing: &str, filters: &str) -> Result<Self, GatewayError> {
        let malformed = || {
            GatewayError::invalid(
                "the cursor is malformed: pass `next_cursor` from the previous result unchanged, \
                 or leave the cursor out to start from the beginning",
            )
        };
        if cursor.len() > MAX_CURSOR_BYTES {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .map_err(|_| malformed())?;
        let c: ListingCursor = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        if c.v != 1 || c.l != listing {
            return Err(malformed());
        }
        if c.f != fingerprint(filters) {
            return Err(GatewayError::invalid(
                "the cursor belongs to a listing with other arguments: repeat the call with the \
                 same arguments as the one that returned the cursor, or leave the cursor out to \
                 start from the beginning",
            ));
        }
        Ok(c)
    }
}

/// A short, stable fingerprint (FNV-1a, 64 bits) of the filters.
fn fingerprint(filters: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in filters.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_others() {
        let c = ListingCursor::new("tables", "public|%", "app", "Sales", "Order Items");
        let s = c.encode();
        assert_eq!(
            ListingCursor::decode(&s, "tables", "public|%").ok(),
            Some(c)
        );
        for bad in ["", "!!!", "e30", &s[..s.len() - 2]] {
            let e = ListingCursor::decode(bad, "tables", "public|%").err();
            assert!(
                e.is_some_and(|e| e.0.message.contains("malformed")),
                "{bad}"
            );
        }
        let e = ListingCursor::decode(&s, "tables", "other").err();
        assert!(e.is_some_and(|e| e.0.message.contains("other arguments")));
        assert!(ListingCursor::decode(&s, "resources", "public|%").is_err());
    }
}

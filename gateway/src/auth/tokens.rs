//! Static bearer tokens.
//!
//! One token per line, three fields separated by white space; `#` starts a
//! comment:
//!
//! ```text
//! # principal   permissions        token (plain, or sha256:<64 hex digits>)
//! ci-bot        read               sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! alice         read,write:sales   3f1c0a…(at least 16 characters)
//! ```
//!
//! Tokens are kept only as SHA-256 digests; a presented token is hashed and
//! compared with every digest in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Principal;
use super::permissions::Permissions;

/// Shortest plain token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The configured tokens, hashed.
pub struct TokenStore {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

/// SHA-256 of `s`.
pub fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

impl TokenStore {
    /// Parses the token lines of `text`; `origin` names where they came from
    /// in error messages (never the token itself). Entries may also be
    /// separated by `;` (handy in an environment variable).
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in text.split(['\n', ';']).enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = format!("{origin}, entry {}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, perms, token] = fields.as_slice() else {
                return Err(format!(
                    "{at}: expected three fields `PRINCIPAL PERMISSIONS TOKEN`, found {}",
                    fields.len()
                ));
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
            {
                return Err(format!(
                    "{at}: principal `{name}` may only use letters, digits and . _ @ -"
                ));
            }
            let permissions =
                Permissions::parse(perms.split(',')).map_err(|e| format!("{at}: {e}"))?;
            let digest = match token.strip_prefix("sha256:") {
                Some(hex) => decode_hex(hex).ok_or_else(|| {
                    format!("{at}: a hashed token is `sha256:` and 64 hexadecimal digits")
                })?,
                None if token.chars().count() < MIN_TOKEN_CHARS => {
                    return Err(format!(
                        "{at}: the token of `{name}` is shorter than {MIN_TOKEN_CHARS} characters; \
                         use a long random one (e.g. `openssl rand -hex 32`)"
                    ));
                }
                None => digest(token.as_bytes()),
            };
            if entries.iter().any(|e| e.digest == digest) {
                return Err(format!("{at}: the same token appears twice"));
            }
            entries.push(Entry {
                digest,
                principal: Principal::token(name, permissions),
            });
        }
        if entries.is_empty() {
            return Err(format!("{origin}: no tokens"));
        }
        Ok(TokenStore { entries })
    }

    /// Adds the entries of `other`.
    pub fn extend(&mut self, other: TokenStore) -> Result<(), String> {
        for e in other.entries {
            if self.entries.iter().any(|x| x.digest == e.digest) {
                return Err("the same token is configured twice".into());
            }
            self.entries.push(e);
        }
        Ok(())
    }

    /// The principal `token` belongs to. Every digest is compared, in
    /// constant time, whether or not an earlier one matched.
    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        let presented = digest(token.as_bytes());
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&presented)) {
                found = Some(&e.principal);
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::permissions::Access;

    #[test]
    fn plain_and_hashed_tokens() -> Result<(), String> {
        let hashed: String = digest(b"another-long-token-value")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = format!(
            "# comment\nalice read,write:sales a-long-enough-token\n\nbot  dba  sha256:{hashed}  # trailing\n"
        );
        let store = TokenStore::parse(&text, "test")?;
        assert_eq!(store.len(), 2);
        let alice = store.lookup("a-long-enough-token").ok_or("alice")?;
        assert_eq!(alice.name, "alice");
        assert!(alice.permissions.allows(Access::Write, "sales"));
        let bot = store.lookup("another-long-token-value").ok_or("bot")?;
        assert!(bot.permissions.any(Access::Dba));
        assert!(store.lookup("a-long-enough-tokeN").is_none());
        assert!(store.lookup("").is_none());
        Ok(())
    }

    #[test]
    fn bad_lines_are_explained_without_the_token() {
        let err = TokenStore::parse("alice read short", "f")
            .err()
            .unwrap_or_default();
        assert!(err.contains("shorter than 16"), "{err}");
        assert!(!err.contains("short "), "{err}");
        let err = TokenStore::parse("alice reed a-long-enough-token", "f")
            .err()
            .unwrap_or_default();
        assert!(err.contains("unknown permission `reed`"), "{err}");
        assert!(!err.contains("a-long-enough-token"), "{err}");
        let err = TokenStore::parse("alice read", "f")
            .err()
            .unwrap_or_default();
        assert!(err.contains("three fields"), "{err}");
        let err = TokenStore::parse("a read x-long-enough-token;b read x-long-enough-token", "f")
            .err()
            .unwrap_or_default();
        assert!(err.contains("twice"), "{err}");
        let err = TokenStore::parse("a read sha256:abc", "f")
            .err()
            .unwrap_or_default();
        assert!(err.contains("64 hexadecimal"), "{err}");
    }
}

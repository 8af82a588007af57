//! JWT bearer tokens (HS256, RS256, ES256) issued by an OAuth 2.0
//! authorization server.
//!
//! A token is accepted when its signature verifies with a configured key,
//! `iss` is the configured issuer, `aud` holds a configured audience, and
//! `exp`/`nbf` hold within a small clock skew. Its principal is the `sub`
//! claim (configurable) and its permissions come from the scopes in the
//! `scope` claim (a space-separated string or an array; `scp` is read when
//! `scope` is absent): `pgmcp:read`, `pgmcp:write:sales`, … (see
//! [`super::permissions`]); other scopes are ignored.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::KeyAlgorithm;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::jwks::KeySet;
use super::permissions::Permissions;
use super::{Principal, Rejection};

/// Prefix of the scopes pgmcp reads.
pub const SCOPE_PREFIX: &str = "pgmcp:";

/// Signature algorithms accepted.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::HS256];

/// What a valid token must say.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub scope_claim: String,
    pub principal_claim: String,
}

/// Verifies tokens against [`JwtSettings`] and a [`KeySet`].
pub struct JwtVerifier {
    settings: JwtSettings,
    keys: KeySet,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings, keys: KeySet) -> Self {
        JwtVerifier { settings, keys }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The principal of a valid token; otherwise why it is not valid.
    pub async fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        let header =
            decode_header(token).map_err(|_| Rejection::invalid("the token is not a JWT"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Rejection::invalid(format!(
                "tokens signed with {:?} are not accepted (use RS256, ES256 or HS256)",
                header.alg
            )));
        }
        let keys = self
            .keys
            .candidates(header.kid.as_deref(), header.alg.family())
            .await;
        if keys.is_empty() {
            return Err(Rejection::invalid(
                "no configured key can verify this token (unknown `kid` or algorithm)",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        let mut last = Rejection::invalid("the token signature is invalid");
        for key in keys {
            if key.alg.is_some_and(|a| !declared_for(a, header.alg)) {
                continue;
            }
            match decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.principal(&data.claims),
                Err(e) => match e.kind() {
                    // Another key may fit.
                    JwtErrorKind::InvalidSignature
                    | JwtErrorKind::InvalidEcdsaKey
                    | JwtErrorKind::InvalidRsaKey(_)
                    | JwtErrorKind::InvalidKeyFormat => {}
                    // The signature was good; a claim is not.
                    kind => return Err(claim_rejection(kind, &self.settings)),
                },
            }
            last = Rejection::invalid("the token signature is invalid");
        }
        Err(last)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, Rejection> {
        let claim = &self.settings.principal_claim;
        let name = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Rejection::invalid(format!(
                    "the token has no `{claim}` claim naming its principal"
                ))
            })?;
        let scopes = claims
            .get(&self.settings.scope_claim)
            .or_else(|| claims.get("scp"));
        let mut permissions = Permissions::default();
        for scope in scope_items(scopes) {
            if let Some(item) = scope.strip_prefix(SCOPE_PREFIX)
                && permissions.add(item).is_none()
            {
                tracing::debug!(scope = %scope, "ignoring an unknown pgmcp scope");
            }
        }
        Ok(Principal::jwt(name, permissions))
    }
}

/// True when a key declared for `declared` may verify a token signed with `alg`.
fn declared_for(declared: KeyAlgorithm, alg: Algorithm) -> bool {
    matches!(
        (declared, alg),
        (KeyAlgorithm::RS256, Algorithm::RS256)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::HS256, Algorithm::HS256)
    )
}

/// The scope strings of a `scope` claim: space-separated, or an array.
fn scope_items(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .collect(),
        _ => Vec::new(),
    }
}

fn claim_rejection(kind: &JwtErrorKind, s: &JwtSettings) -> Rejection {
    match kind {
        JwtErrorKind::ExpiredSignature => Rejection::invalid("the token has expired"),
        JwtErrorKind::ImmatureSignature => {
            Rejection::invalid("the token is not valid yet (nbf is in the future)")
        }
        JwtErrorKind::InvalidAudience => Rejection::invalid(format!(
            "the token's audience (aud) is not this server; expected {}",
            s.audiences.join(" or ")
        )),
        JwtErrorKind::InvalidIssuer => Rejection::invalid(format!(
            "the token's issuer (iss) is not accepted; expected {}",
            s.issuer
        )),
        JwtErrorKind::MissingRequiredClaim(c) => {
            Rejection::invalid(format!("the token has no `{c}` claim"))
        }
        JwtErrorKind::InvalidClaimFormat(c) => {
            Rejection::invalid(format!("the token's `{c}` claim is malformed"))
        }
        _ => Rejection::invalid("the token is malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::permissions::Access;

    /// A public RSA key and an RS256 token it signed (valid until 2100);
    /// the private key was thrown away after signing.
    const RS256_JWKS: &str = r#"{"keys": [{"kty": "RSA", "kid": "rs-test", "use": "sig", "alg": "RS256", "n": "sjCKpfBi6w_Jw9BQZZZu4nktYAAqgI_2BTRDe6muAiKUa6us3D4n_GsCdNl4c99dAolo5zBYlGNCag44ItMpmjilBQUjEE75W69dCL1aol02EL4p7D4WOYKJeHbsRpymo71S3Lf-Eu2zvqD9gGPlt4bXDo-LqMDQQN5oHaK0T-alLKbNrUnGsUU6ilEcNn-5h56E57ioDuXoMHebKNv50iDT3LB4Hjvjph70dD45bq6jVyBeqL2Y_rcl9pEhKwSMjPuC1-r4WsdFlKo7JEaHuDBEarJo09pHKaMliV4stCk-l-PA4nABCMwjFqAdOFWKGKL9ozkd9P3bF5YjM1mgkw", "e": "AQAB"}]}"#;
    const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzLXRlc3QifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0IiwiYXVkIjoiaHR0cHM6Ly9tY3AudGVzdC9tY3AiLCJzdWIiOiJyc2EtdXNlciIsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzAwMDAwMDAwLCJzY29wZSI6Im9wZW5pZCBwZ21jcDpyZWFkIn0.WCILX1SuhWf53I8GG07Q43TBSK35KR3RjPTlDzF2OjlI-qwyyow98G171MP176N037nwrMlwLgPPjukYl5Hub8UUupUMkzS1mb-1rsnXJWQiix0DhmlomgP39cvZI_Pbh_nGQamhVlEIJu2Mzb1IHrjZPUJhiIF8o--XDl0KHnRWE6drRsMKQjZiWP7kdT3U3XYvJnT3p5eyxtxqoe35BA_IK4RZpfK70D3RUFyySJRW64xc167upYUhwI9CxmfhPt0mUXZAbk_UMRMUfPv6K-ubfZrGZLjX1CG3FwSf8CiGpxMTTqeJCpYeEsgRD96T5psovPo0lyzCPhVR9NCMjA";

    fn verifier(issuer: &str, audience: &str) -> anyhow::Result<JwtVerifier> {
        let keys = super::super::jwks::parse_jwks(RS256_JWKS.as_bytes())?;
        Ok(JwtVerifier::new(
            JwtSettings {
                issuer: issuer.into(),
                audiences: vec![audience.into()],
                leeway: Duration::from_secs(30),
                scope_claim: "scope".into(),
                principal_claim: "sub".into(),
            },
            KeySet::fixed(keys),
        ))
    }

    #[tokio::test]
    async fn rs256_token_verifies_and_maps_scopes() -> anyhow::Result<()> {
        let v = verifier("https://issuer.test", "https://mcp.test/mcp")?;
        let p = v
            .verify(RS256_TOKEN)
            .await
            .map_err(|r| anyhow::anyhow!(r.description))?;
        assert_eq!(p.name, "rsa-user");
        assert!(p.permissions.allows(Access::Read, "any"));
        assert!(!p.permissions.any(Access::Write));

        // A changed signature does not verify.
        let (signed, sig) = RS256_TOKEN.rsplit_once('.').unwrap_or_default();
        let flipped: String = sig
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 10 {
                    if c == 'A' { 'B' } else { 'A' }
                } else {
                    c
                }
            })
            .collect();
        let tampered = format!("{signed}.{flipped}");
        let err = v.verify(&tampered).await.err().map(|r| r.description);
        assert_eq!(err.as_deref(), Some("the token signature is invalid"));

        let v = verifier("https://other.test", "https://mcp.test/mcp")?;
        let err = v
            .verify(RS256_TOKEN)
            .await
            .err()
            .map(|r| r.description)
            .unwrap_or_default();
        assert!(err.contains("issuer"), "{err}");
        let v = verifier("https://issuer.test", "https://elsewhere/mcp")?;
        let err = v
            .verify(RS256_TOKEN)
            .await
            .err()
            .map(|r| r.description)
            .unwrap_or_default();
        assert!(err.contains("audience"), "{err}");
        Ok(())
    }

    #[test]
    fn scopes_as_string_or_array() {
        let s = Value::String("openid pgmcp:read  pgmcp:write:sales".into());
        assert_eq!(
            scope_items(Some(&s)),
            ["openid", "pgmcp:read", "pgmcp:write:sales"]
        );
        let a = serde_json::json!(["pgmcp:dba", 5, "x y"]);
        assert_eq!(scope_items(Some(&a)), ["pgmcp:dba", "x", "y"]);
        assert!(scope_items(None).is_empty());
    }
}

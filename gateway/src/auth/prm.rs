//! OAuth 2.0 Protected Resource Metadata (RFC 9728): tells MCP clients which
//! authorization server issues tokens for this gateway and which scopes
//! exist. Served at `/.well-known/oauth-protected-resource/mcp` (the
//! resource is `/mcp`) and at `/.well-known/oauth-protected-resource`; every
//! 401 points at it through `WWW-Authenticate: Bearer resource_metadata="…"`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use http::HeaderMap;
use serde_json::{Value, json};

use super::HttpAuth;
use super::permissions::Access;

/// Path of the metadata document for the `/mcp` resource.
pub const PATH: &str = "/.well-known/oauth-protected-resource/mcp";
/// The same document at the root well-known path.
pub const ROOT_PATH: &str = "/.well-known/oauth-protected-resource";

/// What the metadata says.
#[derive(Debug, Clone, Default)]
pub struct ResourceMetadata {
    /// The gateway's public base URL (`--public-url`), without a trailing
    /// slash; when unset it is derived from each request's Host header.
    pub public_url: Option<String>,
    /// Issuer URLs of the authorization servers.
    pub authorization_servers: Vec<String>,
}

impl ResourceMetadata {
    fn base(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        format!("{}://{host}", if https { "https" } else { "http" })
    }

    /// The protected resource: the MCP endpoint.
    pub fn resource_url(&self, headers: &HeaderMap) -> String {
        format!("{}/mcp", self.base(headers))
    }

    /// Where the metadata document is.
    pub fn metadata_url(&self, headers: &HeaderMap) -> String {
        format!("{}{PATH}", self.base(headers))
    }

    /// The document.
    pub fn document(&self, headers: &HeaderMap) -> Value {
        let scopes: Vec<String> = Access::ALL
            .iter()
            .map(|a| format!("{}{a}", super::jwt::SCOPE_PREFIX))
            .collect();
        let mut doc = json!({
            "resource": self.resource_url(headers),
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_name": "pgmcp",
        });
        if !self.authorization_servers.is_empty() {
            doc["authorization_servers"] = json!(self.authorization_servers);
        }
        doc
    }
}

/// `GET` handler for [`PATH`] and [`ROOT_PATH`].
pub async fn serve(State(auth): State<Arc<HttpAuth>>, headers: HeaderMap) -> Json<Value> {
    Json(auth.metadata.document(&headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_from_public_url() {
        let m = ResourceMetadata {
            public_url: Some("https://mcp.example.com".into()),
            authorization_servers: vec!["https://idp.example.com".into()],
        };
        let doc = m.document(&HeaderMap::new());
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://idp.example.com");
        assert_eq!(doc["scopes_supported"][1], "pgmcp:write");
        assert_eq!(
            m.metadata_url(&HeaderMap::new()),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }
}

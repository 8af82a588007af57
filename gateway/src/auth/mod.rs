//! Who is calling, and what they may do.
//!
//! Over HTTP every request to `/mcp` passes [`layer`]: with authentication
//! configured it must carry `Authorization: Bearer <token>`, where the token
//! is a static token ([`tokens`]) or a JWT ([`jwt`]); otherwise the answer is
//! `401` with a `WWW-Authenticate` header pointing at the OAuth 2.0 Protected
//! Resource Metadata ([`prm`]). The authenticated [`Principal`] goes into the
//! request's extensions, where the MCP handler finds it
//! (`http::request::Parts::extensions`); [`permissions`] decides which tools
//! and databases it may use.
//!
//! Without authentication configured every HTTP caller is the anonymous
//! principal with every permission (the gateway then listens on loopback
//! only, unless `--insecure-no-auth`). Over stdio the caller is the local
//! user who started the gateway: trusted, every permission, no token.

pub mod jwks;
pub mod jwt;
pub mod permissions;
pub mod prm;
pub mod tokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};

pub use permissions::{Access, Permissions, Requirement, requires, requires_fleet};

use jwt::JwtVerifier;
use prm::ResourceMetadata;
use tokens::TokenStore;

/// How a principal was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A static bearer token.
    Token,
    /// A JWT from the authorization server.
    Jwt,
    /// HTTP without authentication configured.
    Anonymous,
    /// stdio: the local user who started the gateway.
    Local,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Name for logs and for the workers (`pgmcp-principal` metadata).
    pub name: String,
    pub permissions: Permissions,
    pub via: Via,
}

impl Principal {
    pub fn token(name: &str, permissions: Permissions) -> Self {
        Principal {
            name: name.to_string(),
            permissions,
            via: Via::Token,
        }
    }

    pub fn jwt(name: &str, permissions: Permissions) -> Self {
        Principal {
            name: name.to_string(),
            permissions,
            via: Via::Jwt,
        }
    }

    pub fn anonymous() -> Self {
        Principal {
            name: "anonymous".into(),
            permissions: Permissions::all(),
            via: Via::Anonymous,
        }
    }

    pub fn local() -> Self {
        Principal {
            name: "local".into(),
            permissions: Permissions::all(),
            via: Via::Local,
        }
    }
}

/// Why a request was not authenticated. The description is safe to show the
/// caller: it never contains the token.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// `None` when no credentials were sent (RFC 6750 §3.1: no error code then).
    pub error: Option<&'static str>,
    pub description: String,
}

impl Rejection {
    pub fn missing() -> Self {
        Rejection {
            error: None,
            description: "this server requires a bearer token (Authorization: Bearer …)".into(),
        }
    }

    pub fn invalid(description: impl Into<String>) -> Self {
        Rejection {
            error: Some("invalid_token"),
            description: description.into(),
        }
    }

    fn bad_request(description: impl Into<String>) -> Self {
        Rejection {
            error: Some("invalid_request"),
            description: description.into(),
        }
    }
}

/// The configured ways to authenticate.
pub struct Authenticator {
    tokens: Option<Arc<TokenStore>>,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    pub fn new(tokens: Option<Arc<TokenStore>>, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { tokens, jwt }
    }

    /// True when any authentication is configured.
    pub fn enabled(&self) -> bool {
        self.tokens.is_some() || self.jwt.is_some()
    }

    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// The principal of a request's credentials.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Rejection::missing());
        };
        let value = value
            .to_str()
            .map_err(|_| Rejection::bad_request("the Authorization header is not ASCII"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(Rejection::bad_request(
                    "the Authorization header must be `Bearer <token>`",
                ));
            }
        };
        if token.is_empty() {
            return Err(Rejection::bad_request("the bearer token is empty"));
        }
        if let Some(store) = &self.tokens
            && let Some(p) = store.lookup(token)
        {
            return Ok(p.clone());
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token).await,
            _ => Err(Rejection::invalid("the token is not valid")),
        }
    }
}

/// State of the HTTP authentication layer.
pub struct HttpAuth {
    pub authenticator: Authenticator,
    pub metadata: ResourceMetadata,
}

/// Middleware for `/mcp`: authenticates and puts the [`Principal`] (as
/// `Arc<Principal>`) into the request's extensions, or answers 401.
pub async fn layer(State(auth): State<Arc<HttpAuth>>, mut req: Request, next: Next) -> Response {
    if !auth.authenticator.enabled() {
        req.extensions_mut()
            .insert(Arc::new(Principal::anonymous()));
        return next.run(req).await;
    }
    match auth.authenticator.authenticate(req.headers()).await {
        Ok(principal) => {
            tracing::debug!(principal = %principal.name, via = ?principal.via, "authenticated");
            req.extensions_mut().insert(Arc::new(principal));
            next.run(req).await
        }
        Err(rejection) => {
            tracing::info!(reason = %rejection.description, "request refused: not authenticated");
            let metadata_url = auth.metadata.metadata_url(req.headers());
            unauthorized(&rejection, &metadata_url)
        }
    }
}

/// A 401 with RFC 6750 / RFC 9728 `WWW-Authenticate` and a JSON body.
fn unauthorized(r: &Rejection, metadata_url: &str) -> Response {
    let quote = |s: &str| s.replace(['"', '\\'], "'");
    let mut challenge = format!(
        "Bearer realm=\"pgmcp\", resource_metadata=\"{}\"",
        quote(metadata_url)
    );
    if let Some(code) = r.error {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quote(&r.description)
        ));
    }
    let body = serde_json::json!({
        "error": r.error.unwrap_or("unauthorized"),
        "error_description": r.description,
    });
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    resp
}

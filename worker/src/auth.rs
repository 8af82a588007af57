//! Who may call this worker, and who the call is for.
//!
//! [`AuthLayer`] wraps the whole gRPC server. With `--worker-token` every
//! call must carry `authorization: Bearer <token>`, compared in constant time
//! via SHA-256 digests; anything else is refused with UNAUTHENTICATED before
//! it reaches a service. `grpc.health.v1.Health` stays open so that probes
//! work without credentials. (Client certificates, when `--tls-ca` is set,
//! are enforced earlier, by the TLS handshake.)
//!
//! The layer also reads the caller's identity the gateway sends —
//! `pgmcp-principal` and `pgmcp-request-id` — into a [`Caller`] in the
//! request's extensions; handlers get it with [`caller`].

use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tower::{Layer, Service};

/// Metadata key carrying the caller's principal (percent-encoded).
pub const PRINCIPAL_KEY: &str = "pgmcp-principal";
/// Metadata key carrying the gateway's request id.
pub const REQUEST_ID_KEY: &str = "pgmcp-request-id";
/// Calls under this path prefix need no credentials.
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";

/// SHA-256 of `s`.
pub fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Who a call is for, as the gateway said.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The principal the gateway authenticated, decoded; `None` when the
    /// caller sent none (e.g. a tool talking to the worker directly).
    pub principal: Option<String>,
    /// The gateway's request id for the MCP call.
    pub request_id: Option<String>,
}

impl Caller {
    /// The principal, or `-` for log lines.
    pub fn principal_or_dash(&self) -> &str {
        self.principal.as_deref().unwrap_or("-")
    }

    /// The request id, or `-` for log lines.
    pub fn request_id_or_dash(&self) -> &str {
        self.request_id.as_deref().unwrap_or("-")
    }
}

tokio::task_local! {
    /// The caller of the call being served (set by [`crate::calls`]).
    static CURRENT: Arc<Caller>;
}

/// Runs `fut` as a call made by `caller`: [`current`] returns it inside.
pub fn serve_as<F: std::future::Future>(
    caller: Arc<Caller>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    CURRENT.scope(caller, fut)
}

/// The caller of the call being served, if any (for query history).
pub fn current() -> Option<Arc<Caller>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The [`Caller`] of a gRPC request (for query history, audit, tracing).
pub fn caller<T>(req: &tonic::Request<T>) -> Option<&Caller> {
    req.extensions().get::<Arc<Caller>>().map(Arc::as_ref)
}

/// Checks the worker token and records the [`Caller`].
#[derive(Clone)]
pub struct AuthLayer {
    token_digest: Option<[u8; 32]>,
}

impl AuthLayer {
    pub fn new(token_digest: Option<[u8; 32]>) -> Self {
        AuthLayer { token_digest }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            token_digest: self.token_digest,
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    token_digest: Option<[u8; 32]>,
}

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::Either<
        S::Future,
        futures::future::Ready<Result<Self::Response, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        if !path.starts_with(OPEN_PREFIX)
            && let Some(expected) = &self.token_digest
            && !token_matches(req.headers(), expected)
        {
            tracing::warn!(rpc = %path, "call refused: missing or wrong worker token");
            let status = Status::unauthenticated(
                "the worker requires the gateway's worker token (authorization: Bearer …); \
                 set the same --worker-token on the gateway and the worker",
            );
            return futures::future::Either::Right(futures::future::ready(Ok(status.into_http())));
        }
        let headers = req.headers();
        let text = |key: &str| {
            headers
                .get(key)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        let who = Caller {
            principal: text(PRINCIPAL_KEY).map(percent_decode),
            request_id: text(REQUEST_ID_KEY).map(|s| s.chars().take(64).collect()),
        };
        // This runs inside the call's SERVER span (see pgmcp-telemetry).
        if let Some(principal) = &who.principal {
            tracing::Span::current().record("enduser.id", principal.as_str());
        }
        req.extensions_mut().insert(Arc::new(who));
        futures::future::Either::Left(self.inner.call(req))
    }
}

fn token_matches(headers: &http::HeaderMap, expected: &[u8; 32]) -> bool {
    let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return false;
    };
    bool::from(digest(token.trim().as_bytes()).ct_eq(expected))
}

/// Decodes `%XX` escapes; anything malformed is kept as is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_principal_names() {
        assert_eq!(percent_decode("Zo%C3%AB%20Doe%25"), "Zoë Doe%");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }

    #[test]
    fn token_check() -> Result<(), http::Error> {
        let want = digest(b"s3cret-token");
        let req = http::Request::builder()
            .header("authorization", "Bearer s3cret-token")
            .body(())?;
        assert!(token_matches(req.headers(), &want));
        let req = http::Request::builder()
            .header("authorization", "Bearer s3cret-tokem")
            .body(())?;
        assert!(!token_matches(req.headers(), &want));
        let req = http::Request::builder().body(())?;
        assert!(!token_matches(req.headers(), &want));
        Ok(())
    }
}

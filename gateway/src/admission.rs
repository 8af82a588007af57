//! Admission on `/mcp`, as two layers: a global limit on requests in flight
//! that sheds the excess at once (503) rather than queuing it, and a
//! per-principal rate limit (429). Both answer with `Retry-After` and a
//! JSON-RPC error that says how long to wait, so clients back off instead
//! of piling up.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::auth::Principal;

/// How long a shed request is told to wait.
const SHED_RETRY: Duration = Duration::from_millis(100);
/// Keys kept by the rate limiter before idle ones are dropped.
const MAX_KEYS: usize = 10_000;

/// The gateway-wide limit on requests in flight.
pub struct Shedder {
    slots: Semaphore,
    max: usize,
}

impl Shedder {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Shedder {
            slots: Semaphore::new(max),
            max,
        })
    }
}

/// Middleware: serves the request if a slot is free, else answers 503.
pub async fn shed(State(s): State<Arc<Shedder>>, req: Request, next: Next) -> Response {
    match s.slots.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            tracing::warn!(limit = s.max, "request shed: gateway overloaded");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                SHED_RETRY,
                format!(
                    "the gateway is overloaded: {} requests in flight (--max-concurrent-requests); retry in {} ms",
                    s.max,
                    SHED_RETRY.as_millis()
                ),
            )
        }
    }
}

/// Requests per second per principal.
pub struct PrincipalRate {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: NonZeroU32,
}

impl PrincipalRate {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32) -> Option<Arc<Self>> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Arc::new(PrincipalRate {
            limiter: RateLimiter::keyed(Quota::per_second(per_second)),
            per_second,
        }))
    }

    /// `Err(wait)` when `principal` is over its rate.
    fn check(&self, principal: &str) -> Result<(), Duration> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&principal.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Middleware (inside authentication): answers 429 when the caller is over
/// its rate.
pub async fn rate(State(r): State<Arc<PrincipalRate>>, req: Request, next: Next) -> Response {
    let name = req
        .extensions()
        .get::<Arc<Principal>>()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    match r.check(&name) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let wait = wait.max(Duration::from_millis(1));
            tracing::info!(principal = %name, "request refused: rate limit");
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                wait,
                format!(
                    "rate limit of {} requests per second for `{name}` reached \
                     (--rate-limit-per-principal); retry in {} ms",
                    r.per_second,
                    wait.as_millis()
                ),
            )
        }
    }
}

/// A refusal with `Retry-After` (whole seconds, rounded up) and a JSON-RPC
/// error (code -32000, `data.retry_after_ms`).
fn refuse(status: StatusCode, wait: Duration, message: String) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32000,
            "message": message,
            "data": {"retry_after_ms": wait.as_millis() as u64},
        },
    });
    let secs = wait.as_millis().div_ceil(1000).max(1);
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_per_principal() -> anyhow::Result<()> {
        use anyhow::Context;
        let r = PrincipalRate::new(2).context("a limit")?;
        assert!(r.check("alice").is_ok());
        assert!(r.check("alice").is_ok());
        let wait = r.check("alice").err().context("alice over the rate")?;
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(r.check("bob").is_ok());
        assert!(PrincipalRate::new(0).is_none());
        Ok(())
    }
}

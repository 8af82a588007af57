//! The tool call being served: who is calling and the call's request id.
//!
//! [`PgMcp`](crate::server::PgMcp)'s `call_tool` runs each call inside [`run`]; code on
//! the call's task reads it with [`current`] — the worker client sends the
//! principal and request id as gRPC metadata, error results quote the request
//! id, fleet-wide tools filter by the caller's permissions. A task spawned
//! for the call must be wrapped in [`run`] again to keep it.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgmcp_proto::error::ErrorKind;

use crate::auth::{Access, Principal};
use crate::errors::GatewayError;

/// One tool call.
#[derive(Debug)]
pub struct CallContext {
    pub principal: Arc<Principal>,
    /// Correlates the gateway's and the workers' log lines for this call and
    /// is quoted in masked internal errors.
    pub request_id: String,
}

impl CallContext {
    pub fn new(principal: Arc<Principal>) -> Self {
        CallContext {
            principal,
            request_id: new_request_id(),
        }
    }
}

tokio::task_local! {
    static CALL: Arc<CallContext>;
}

/// Runs `fut` as part of the call `ctx`.
pub async fn run<F: Future>(ctx: Arc<CallContext>, fut: F) -> F::Output {
    CALL.scope(ctx, fut).await
}

/// The call this task serves, if any.
pub fn current() -> Option<Arc<CallContext>> {
    CALL.try_with(Arc::clone).ok()
}

/// Whether the caller may use `access` on `database`. Fleet-wide answers
/// (database lists, fleet status, history) leave out what this refuses.
/// Outside a call (no caller: internal use only) everything is allowed.
pub fn may(access: Access, database: &str) -> bool {
    current().is_none_or(|c| c.principal.permissions.allows(access, database))
}

/// The database a request of the caller needing `access` goes to: `database`
/// when named (and allowed), else the caller's only database when limited
/// to one; `""` (the worker's default) only for callers allowed everywhere.
/// `what` names the request in the refusal.
pub fn resolve(access: Access, database: &str, what: &str) -> Result<String, GatewayError> {
    let Some(ctx) = current() else {
        return Ok(database.to_string());
    };
    let p = &ctx.principal;
    let named = (!database.is_empty()).then_some(database);
    match p.permissions.resolve(access, named) {
        Ok(Some(only)) => Ok(only),
        Ok(None) => Ok(database.to_string()),
        Err(denied) => Err(GatewayError::new(
            ErrorKind::PermissionDenied,
            denied.explain(what, &p.name, &p.permissions),
        )),
    }
}

/// A fresh 16-hex-digit id. Unique enough to find log lines, not a secret.
pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn context_is_visible_inside_the_call_only() {
        assert!(current().is_none());
        let ctx = Arc::new(CallContext::new(Arc::new(Principal::local())));
        let id = ctx.request_id.clone();
        let seen = run(ctx, async { current().map(|c| c.request_id.clone()) }).await;
        assert_eq!(seen, Some(id));
        assert!(current().is_none());
        assert_ne!(new_request_id(), new_request_id());
    }
}

//! Limits the gateway enforces itself, each with an error that names the
//! limit and its value: concurrent calls per principal, and the SQL size and
//! parameter count (checked again by the worker; checking here refuses an
//! oversized call before it crosses the network).
//!
//! The HTTP body limit lives with the HTTP routes (`http.rs`), the gRPC
//! message limit with the worker clients (`worker_link.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgmcp_proto::error::ErrorKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::errors::GatewayError;

/// Refuses an SQL statement over `max_sql_bytes` or with more than
/// `max_params` parameters, in the words the worker uses. Every tool that
/// carries SQL (`query`, `execute`, `explain`, each statement of
/// `transaction`, each query of `batch_query`) checks it before calling a
/// worker.
pub fn check_statement(sql: &str, params: usize, limits: &Limits) -> Result<(), GatewayError> {
    check_statement_in(None, sql, params, limits)
}

/// [`check_statement`] for one item of a list; `item` (e.g. `statement 3`)
/// starts the message so the caller knows which one to shorten.
pub fn check_statement_in(
    item: Option<&str>,
    sql: &str,
    params: usize,
    limits: &Limits,
) -> Result<(), GatewayError> {
    let at = item.map(|i| format!("{i}: ")).unwrap_or_default();
    if sql.len() > limits.max_sql_bytes {
        return Err(GatewayError::invalid(format!(
            "{at}the SQL statement is {} bytes, over this gateway's limit of {} bytes (max_sql_bytes)",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    if params > limits.max_params {
        return Err(GatewayError::invalid(format!(
            "{at}{params} params given, over this gateway's limit of {} (max_params)",
            limits.max_params
        )));
    }
    Ok(())
}

/// At most `max` calls in flight per principal. Entries exist only while a
/// principal has calls running, so many distinct principals cost nothing
/// once they are done.
pub struct PrincipalLimiter {
    max: usize,
    running: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A running call's slot; freed on drop.
pub struct CallPermit {
    limiter: Arc<PrincipalLimiter>,
    principal: String,
    permit: Option<OwnedSemaphorePermit>,
}

impl PrincipalLimiter {
    /// `max` of 0 means no limit.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PrincipalLimiter {
            max,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more call of `principal`, or an error naming the limit.
    pub fn try_acquire(self: &Arc<Self>, principal: &str) -> Result<CallPermit, GatewayError> {
        if self.max == 0 {
            return Ok(CallPermit {
                limiter: self.clone(),
                principal: String::new(),
                permit: None,
            });
        }
        let mut running = self
            .running
            .lock()
            .map_err(|_| GatewayError::new(ErrorKind::Internal, "call limiter poisoned"))?;
        let sem = running
            .entry(principal.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone();
        match sem.try_acquire_owned() {
            Ok(permit) => Ok(CallPermit {
                limiter: self.clone(),
                principal: principal.to_string(),
                permit: Some(permit),
            }),
            Err(_) => {
                let mut e = GatewayError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "principal `{principal}` is at its limit of {} concurrent calls \
                         (max_concurrent_calls_per_principal); wait for one to finish",
                        self.max
                    ),
                );
                e.0.retry_safe = true;
                Err(e)
            }
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        drop(permit);
        if let Ok(mut running) = self.limiter.running.lock()
            && running.get(&self.principal).is_some_and(|s| {
                Arc::strong_count(s) == 1 && s.available_permits() == self.limiter.max
            })
        {
            running.remove(&self.principal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_principal_slots() -> Result<(), GatewayError> {
        let l = PrincipalLimiter::new(2);
        let a1 = l.try_acquire("a")?;
        let _a2 = l.try_acquire("a")?;
        let err = l
            .try_acquire("a")
            .err()
            .map(|e| e.0.message)
            .unwrap_or_default();
        assert!(err.contains("at its limit of 2 concurrent calls"), "{err}");
        assert!(err.contains("max_concurrent_calls_per_principal"), "{err}");
        // Others are not affected.
        let _b = l.try_acquire("b")?;
        drop(a1);
        let _a3 = l.try_acquire("a")?;
        Ok(())
    }

    #[test]
    fn idle_principals_are_forgotten() -> Result<(), GatewayError> {
        let l = PrincipalLimiter::new(1);
        for i in 0..100 {
            drop(l.try_acquire(&format!("p{i}"))?);
        }
        assert_eq!(l.running.lock().map(|m| m.len()).unwrap_or(usize::MAX), 0);
        Ok(())
    }
}

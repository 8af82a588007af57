//! What a target's pools look like right now, for `Info`: open, idle and
//! in-use connections from sqlx, and the callers waiting for a connection,
//! which sqlx does not count, so [`Waiters`] does.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use pgmcp_proto::v1::PoolStats;
use sqlx::PgPool;

/// Counts the callers currently waiting in `pool.acquire()`.
#[derive(Debug, Default)]
pub struct Waiters(AtomicU32);

impl Waiters {
    /// Awaits `acquire`, counted as waiting meanwhile. The count drops again
    /// however the wait ends, including when the caller is cancelled.
    pub async fn wait<F: Future>(&self, acquire: F) -> F::Output {
        self.0.fetch_add(1, Ordering::Relaxed);
        let _done = Done(&self.0);
        acquire.await
    }

    /// Callers waiting right now.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Done<'a>(&'a AtomicU32);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pool's state; `waiting` as counted by the caller.
pub fn stats(pool: &PgPool, waiting: u32) -> PoolStats {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
    PoolStats {
        size,
        idle,
        in_use: size - idle,
        waiting,
        max_connections: pool.options().get_max_connections(),
        min_connections: pool.options().get_min_connections(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_while_waiting_and_after_cancel() {
        let w = Waiters::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = w.wait(rx);
        tokio::pin!(waiting);
        // Poll once: the wait has started.
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "still waiting"
        );
        assert_eq!(w.count(), 1);
        drop(tx);
        let _ = waiting.await;
        assert_eq!(w.count(), 0);

        let pending = w.wait(futures::future::pending::<()>());
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(10), pending).await;
        assert!(cancelled.is_err());
        assert_eq!(w.count(), 0);
    }
}

//! Stopping a unary call's work in PostgreSQL when its caller goes away.
//!
//! A unary RPC runs its work in a task of its own (see `service::unary`), so
//! a caller going away does not cut the work off between two statements. But
//! dropping a sqlx future does not stop PostgreSQL either, so the RPC watches
//! its work: [`Watch::run`] gives the work's task a [`Call`], every session
//! the work opens registers its backend there ([`enter`]), and when the RPC
//! is dropped before the work has answered, each registered backend is
//! terminated from the target's side connection. A terminated backend stops
//! whatever it runs (an uncommitted transaction rolls back) and its
//! connection is closed, never pooled again: `pg_cancel_backend` would be
//! lost on a backend that is between two statements, and could reach the
//! next call if the connection went back to the pool in the meantime.
//!
//! The streaming `Query` RPC has its own path: its producer notices the
//! closed channel and cancels (see `query.rs`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tracing::Instrument;

tokio::task_local! {
    static CALL: Arc<Call>;
}

/// The backends of one unary call's work, and whether its caller is gone.
#[derive(Default)]
pub struct Call {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    gone: bool,
    next: u64,
    live: Vec<Live>,
}

struct Live {
    id: u64,
    pid: i32,
    side: PgPool,
    terminated: bool,
}

impl Call {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller went away: terminates every backend the work holds now,
    /// and makes later sessions of the work refuse to start.
    fn caller_gone(&self) {
        let victims: Vec<(i32, PgPool)> = {
            let mut state = self.lock();
            state.gone = true;
            state
                .live
                .iter_mut()
                .filter(|l| !l.terminated)
                .map(|l| {
                    l.terminated = true;
                    (l.pid, l.side.clone())
                })
                .collect()
        };
        if victims.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(
            async move {
                for (pid, side) in victims {
                    terminate(pid, &side).await;
                }
            }
            .in_current_span(),
        );
    }
}

async fn terminate(pid: i32, side: &PgPool) {
    let stop = sqlx::query("SELECT pg_catalog.pg_terminate_backend($1)").bind(pid);
    match tokio::time::timeout(Duration::from_secs(2), stop.execute(side)).await {
        Ok(Ok(_)) => tracing::debug!(pid, "caller went away; backend terminated"),
        Ok(Err(e)) => {
            tracing::warn!(pid, error = %e, "caller went away; could not stop its backend")
        }
        Err(_) => tracing::warn!(pid, "caller went away; stopping its backend timed out"),
    }
}

/// Watches one unary call: create it on the RPC's task, run the work with
/// [`Watch::run`], and [`Watch::answered`] once the work's result is in.
/// Dropped before that, the caller is gone.
pub struct Watch {
    call: Arc<Call>,
    answered: bool,
}

impl Watch {
    pub fn new() -> Self {
        Watch {
            call: Arc::new(Call::default()),
            answered: false,
        }
    }

    /// Runs `work` as the watched call (on whatever task polls it).
    pub fn run<F: Future>(&self, work: F) -> impl Future<Output = F::Output> + use<F> {
        CALL.scope(self.call.clone(), work)
    }

    /// The work has answered: nothing to stop any more.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.answered {
            self.call.caller_gone();
        }
    }
}

/// A backend registered with the current call; see [`enter`].
pub struct Entered {
    call: Arc<Call>,
    id: u64,
}

/// The caller of the current call went away before its session began.
#[derive(Debug)]
pub struct Gone;

/// Registers backend `pid` (reachable through `side`) with the call this
/// task serves, if it is a watched one. `Err(Gone)` when its caller has
/// already gone away: the session must not start.
pub fn enter(pid: i32, side: &PgPool) -> Result<Option<Entered>, Gone> {
    let Ok(call) = CALL.try_with(Arc::clone) else {
        return Ok(None);
    };
    let id = {
        let mut state = call.lock();
        if state.gone {
            return Err(Gone);
        }
        let id = state.next;
        state.next += 1;
        state.live.push(Live {
            id,
            pid,
            side: side.clone(),
            terminated: false,
        });
        id
    };
    Ok(Some(Entered { call, id }))
}

impl Entered {
    /// The session is done with its backend. True when the backend was
    /// terminated (or is being): its connection must be closed, not pooled.
    pub fn leave(self) -> bool {
        let mut state = self.call.lock();
        match state.live.iter().position(|l| l.id == self.id) {
            Some(i) => state.live.swap_remove(i).terminated,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Result<PgPool, sqlx::Error> {
        // Never connects: the tests only register and release.
        sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://localhost/none")
    }

    #[tokio::test]
    async fn outside_a_watched_call_nothing_registers() -> Result<(), sqlx::Error> {
        assert!(matches!(enter(1, &pool()?), Ok(None)));
        Ok(())
    }

    #[tokio::test]
    async fn an_answered_call_leaves_its_connections_to_the_pool() -> Result<(), sqlx::Error> {
        let side = pool()?;
        let watch = Watch::new();
        let left = watch
            .run(async {
                let Ok(Some(entered)) = enter(7, &side) else {
                    return None;
                };
                Some(entered.leave())
            })
            .await;
        watch.answered();
        assert_eq!(left, Some(false));
        Ok(())
    }

    #[tokio::test]
    async fn a_gone_caller_marks_live_backends_and_refuses_new_sessions() -> Result<(), sqlx::Error>
    {
        let side = pool()?;
        let watch = Watch::new();
        let call = watch.call.clone();
        let entered = CALL.scope(call.clone(), async { enter(7, &side) }).await;
        let Ok(Some(entered)) = entered else {
            panic!("a watched call registers its backend");
        };
        drop(watch);
        assert!(entered.leave(), "the backend was terminated");
        let again = CALL.scope(call, async { enter(8, &side) }).await;
        assert!(matches!(again, Err(Gone)));
        Ok(())
    }
}

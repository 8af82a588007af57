//! The workers a gateway currently knows, their health, what they serve and
//! how busy this gateway keeps them; and the choice of one for a call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use pgmcp_proto::v1::worker_client::WorkerClient;
use rand::RngExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::errors::GatewayError;
use crate::worker_link::WorkerChannel;

/// One worker.
pub struct Member {
    pub url: String,
    /// Each call gets a CLIENT span and carries the trace context.
    pub(super) client: WorkerClient<WorkerChannel>,
    pub(super) channel: WorkerChannel,
    healthy: AtomicBool,
    /// Calls this gateway has sent to the worker that have not ended.
    outstanding: AtomicUsize,
    /// The databases the worker announced in `Info`; `None` until it did.
    targets: RwLock<Option<Vec<String>>>,
    /// Why the worker is out of the rotation, when its answer says more than
    /// "unreachable" (e.g. it refused this gateway's credentials).
    refusal: RwLock<Option<GatewayError>>,
    /// Asks the health watch to check again now (after a failed call).
    pub(super) recheck: Notify,
    /// Stops the health watch when the worker leaves the fleet.
    pub(super) stop: CancellationToken,
}

impl Member {
    pub(super) fn new(
        url: String,
        channel: WorkerChannel,
        client: WorkerClient<WorkerChannel>,
    ) -> Self {
        Member {
            url,
            client,
            channel,
            healthy: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            targets: RwLock::new(None),
            refusal: RwLock::new(None),
            recheck: Notify::new(),
            stop: CancellationToken::new(),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records the health watch's (or a failed call's) verdict; true when it
    /// changed.
    pub(super) fn set_healthy(&self, up: bool) -> bool {
        self.healthy.swap(up, Ordering::AcqRel) != up
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The databases the worker serves, once known.
    pub fn targets(&self) -> Option<Vec<String>> {
        self.targets.read().ok().and_then(|t| t.clone())
    }

    pub(super) fn set_targets(&self, names: Vec<String>) {
        if let Ok(mut t) = self.targets.write() {
            *t = Some(names);
        }
    }

    pub(super) fn set_refusal(&self, err: Option<GatewayError>) {
        if let Ok(mut r) = self.refusal.write() {
            *r = err;
        }
    }

    /// The worker's refusal of this gateway, if that is why it is out.
    pub fn refusal(&self) -> Option<GatewayError> {
        self.refusal.read().ok().and_then(|r| r.clone())
    }

    /// True when the worker announced `database`.
    pub fn serves(&self, database: &str) -> bool {
        self.targets
            .read()
            .ok()
            .is_some_and(|t| t.as_ref().is_some_and(|n| n.iter().any(|d| d == database)))
    }

    /// Counts a call as outstanding for as long as the guard lives.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// One call in flight on a worker.
pub(super) struct InFlight(Arc<Member>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Power of two choices: of two members drawn at random from `eligible`,
/// the one with fewer outstanding calls (ties go to the first drawn).
pub(super) fn pick_p2c(eligible: &[Arc<Member>]) -> Option<Arc<Member>> {
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0].clone()),
        n => {
            let mut rng = rand::rng();
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (&eligible[a], &eligible[b]);
            Some(if b.outstanding() < a.outstanding() {
                b.clone()
            } else {
                a.clone()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(url: &str) -> anyhow::Result<Arc<Member>> {
        let link = crate::worker_link::Link::new(
            &crate::worker_link::LinkConfig {
                connect_timeout: std::time::Duration::from_secs(1),
                tls: None,
                token: None,
                max_message_bytes: 1024,
            },
            &crate::telemetry::Metrics::new()?,
        )?;
        let channel = link.channel(url, None)?;
        Ok(Arc::new(Member::new(
            url.to_string(),
            channel.clone(),
            link.client(channel),
        )))
    }

    #[tokio::test]
    async fn two_choices_prefer_the_less_loaded_worker() -> anyhow::Result<()> {
        let members = (0..3)
            .map(|i| member(&format!("http://127.0.0.1:{}", 1000 + i)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Load the first two; the third, idle, wins every draw it is in.
        let _busy: Vec<_> = (0..5)
            .flat_map(|_| [members[0].begin(), members[1].begin()])
            .collect();
        let mut picked = [0usize; 3];
        for _ in 0..3000 {
            let m = pick_p2c(&members).ok_or_else(|| anyhow::anyhow!("no member"))?;
            let i = members
                .iter()
                .position(|x| Arc::ptr_eq(x, &m))
                .ok_or_else(|| anyhow::anyhow!("unknown member"))?;
            picked[i] += 1;
        }
        // The idle worker is in 2 of 3 pairs; the busy ones only win against
        // each other (1 pair in 3, split between them).
        assert!(picked[2] > 1800, "{picked:?}");
        assert!(picked[0] + picked[1] > 600, "{picked:?}");
        assert_eq!(picked.iter().sum::<usize>(), 3000);
        Ok(())
    }

    #[tokio::test]
    async fn outstanding_calls_are_counted_until_dropped() -> anyhow::Result<()> {
        let m = member("http://127.0.0.1:1")?;
        let a = m.begin();
        let b = m.begin();
        assert_eq!(m.outstanding(), 2);
        drop(a);
        drop(b);
        assert_eq!(m.outstanding(), 0);
        Ok(())
    }
}

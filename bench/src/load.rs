//! Closed-loop load: N tasks, each with its own connection, each sending
//! its next call as soon as the previous one answered. Every call's latency
//! is kept; percentiles come from the sorted list.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::Barrier;

use crate::cpu::{CpuMeter, CpuPerCall};

/// Something that makes one call on its own connection.
pub trait Caller: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<()>> + Send;
}

/// How long to drive the load.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// Warm up for `warmup`, then measure for `measure`.
    Timed { warmup: Duration, measure: Duration },
    /// A fixed number of calls per task, no warm-up (smoke mode).
    Calls(usize),
}

/// Latency and throughput of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub calls: usize,
    pub elapsed_s: f64,
    pub calls_per_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Runs `concurrency` tasks, each with a caller from `connect`.
pub async fn run<C, F, Fut>(concurrency: usize, plan: Plan, connect: F) -> Result<Stats>
where
    C: Caller,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<C>>,
{
    Ok(run_with(concurrency, plan, None, connect).await?.0)
}

/// As [`run`], also reading the CPU time each process spent per call during
/// the measured window.
pub async fn run_metered<C, F, Fut>(
    concurrency: usize,
    plan: Plan,
    meter: &CpuMeter,
    connect: F,
) -> Result<(Stats, CpuPerCall)>
where
    C: Caller,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<C>>,
{
    let (stats, cpu) = run_with(concurrency, plan, Some(meter), connect).await?;
    Ok((stats, cpu.context("no CPU reading")?))
}

async fn run_with<C, F, Fut>(
    concurrency: usize,
    plan: Plan,
    meter: Option<&CpuMeter>,
    connect: F,
) -> Result<(Stats, Option<CpuPerCall>)>
where
    C: Caller,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<C>>,
{
    // Connect everything first, so connection set-up is not measured.
    let mut callers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        callers.push(connect().await?);
    }
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut tasks = Vec::with_capacity(concurrency);
    for mut caller in callers {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let (measure, fixed) = match plan {
                Plan::Timed { warmup, measure } => {
                    let until = Instant::now() + warmup;
                    while Instant::now() < until {
                        caller.call().await?;
                    }
                    (measure, usize::MAX)
                }
                Plan::Calls(n) => (Duration::MAX, n),
            };
            barrier.wait().await;
            let start = Instant::now();
            let mut latencies: Vec<u32> = Vec::with_capacity(fixed.min(1 << 20));
            while latencies.len() < fixed && start.elapsed() < measure {
                let t = Instant::now();
                caller.call().await?;
                let nanos = t.elapsed().as_nanos();
                latencies.push(u32::try_from(nanos / 100).unwrap_or(u32::MAX));
            }
            Ok::<_, anyhow::Error>((latencies, start.elapsed(), caller))
        }));
    }
    barrier.wait().await;
    let before = meter.map(CpuMeter::snapshot).transpose()?;
    let mut all = Vec::new();
    let mut elapsed = Duration::ZERO;
    // The connections stay open until the CPU time is read: a PostgreSQL
    // backend that exits takes its CPU time with it until the postmaster
    // reaps it.
    let mut callers = Vec::with_capacity(concurrency);
    for task in tasks {
        let (latencies, took, caller) = task.await.context("a load task panicked")??;
        all.extend(latencies);
        elapsed = elapsed.max(took);
        callers.push(caller);
    }
    let cpu = match (meter, before) {
        (Some(meter), Some(before)) => Some(meter.per_call(&before, &meter.snapshot()?, all.len())),
        _ => None,
    };
    drop(callers);
    Ok((stats(all, elapsed), cpu))
}

/// `latencies` in units of 100 ns.
fn stats(mut latencies: Vec<u32>, elapsed: Duration) -> Stats {
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 10.0
    };
    let secs = elapsed.as_secs_f64();
    Stats {
        calls: latencies.len(),
        elapsed_s: round3(secs),
        calls_per_s: if secs > 0.0 {
            (latencies.len() as f64 / secs).round()
        } else {
            0.0
        },
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        max_us: at(1.0),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_list() {
        // 1..=100 µs, in units of 100 ns.
        let s = stats(
            (1..=100).rev().map(|us| us * 10).collect(),
            Duration::from_secs(2),
        );
        assert_eq!(s.calls, 100);
        assert_eq!(s.calls_per_s, 50.0);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p90_us, 90.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
    }
}

//! Worker and gateway processes: spawning, readiness, memory.
//!
//! Readiness is what a deployment waits for: a worker is ready when its
//! gRPC health service reports `pgmcp.v1.Worker` SERVING (it starts serving
//! only after it has connected to its database), a gateway when `/readyz`
//! answers 200 (it has reached a worker). Memory is the kernel's view of the
//! process: `VmRSS` (resident now) and `VmHWM` (the peak, which writing `5`
//! to `/proc/PID/clear_refs` resets to the current RSS).

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tonic_health::pb::health_client::HealthClient;

use crate::clients::worker_is_serving;
use crate::http::HttpConn;

/// How long a process gets to become ready, and to exit after SIGTERM.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is probed.
const PROBE_EVERY: Duration = Duration::from_millis(1);

/// A running worker or gateway.
pub struct Proc {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    /// Time from spawn until the readiness probe succeeded.
    pub ready_after: Duration,
}

impl Proc {
    /// Starts a worker serving `database_url` and waits until it is SERVING.
    pub async fn worker(bin: &Path, database_url: &str, log: &Path) -> Result<Self> {
        let addr = free_addr()?;
        let mut cmd = Command::new(bin);
        // Admission above the load's concurrency: calls queue for the pool
        // (as with direct sqlx) instead of being refused as overloaded.
        cmd.arg("--listen")
            .arg(addr.to_string())
            .args(["--max-concurrent-calls", "256"])
            .env("DATABASE_URL", database_url);
        let started = Instant::now();
        let child = spawn(cmd, log, "pgmcp-worker")?;
        let mut proc = Proc::new("pgmcp-worker", addr, child)?;
        proc.wait_ready(started, || worker_serving(addr)).await?;
        Ok(proc)
    }

    /// Starts a gateway for `worker` and waits until `/readyz` answers 200.
    /// `threads` 0 leaves the gateway's default.
    pub async fn gateway(bin: &Path, worker: SocketAddr, threads: u16, log: &Path) -> Result<Self> {
        let addr = free_addr()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--workers")
            .arg(format!("http://{worker}"))
            // One anonymous principal drives all the load: no per-principal cap.
            .args(["--max-concurrent-calls-per-principal", "0"]);
        if threads > 0 {
            cmd.arg("--threads").arg(threads.to_string());
        }
        let started = Instant::now();
        let child = spawn(cmd, log, "pgmcp-gateway")?;
        let mut proc = Proc::new("pgmcp-gateway", addr, child)?;
        proc.wait_ready(started, || gateway_ready(addr)).await?;
        Ok(proc)
    }

    fn new(name: &'static str, addr: SocketAddr, child: Child) -> Result<Self> {
        let pid = child.id().with_context(|| format!("{name} has no pid"))?;
        Ok(Proc {
            name,
            addr,
            pid,
            child,
            ready_after: Duration::ZERO,
        })
    }

    async fn wait_ready<F, Fut>(&mut self, started: Instant, probe: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        loop {
            if probe().await {
                self.ready_after = started.elapsed();
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready; see its log",
                    self.name
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("{} not ready within {READY_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Current memory figures.
    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.pid)
    }

    /// Resets the peak (`VmHWM`) to the current RSS.
    pub fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .with_context(|| format!("resetting the peak RSS of {}", self.name))
    }

    /// SIGTERM, then wait (killing it after a while).
    pub async fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = Pid::from_raw(i32::try_from(self.pid)?);
        let _ = kill(pid, Signal::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            bail!("{} did not exit within {STOP_TIMEOUT:?}", self.name);
        }
        Ok(())
    }
}

/// Starts `cmd` with its log going to `log` and none of our telemetry or
/// pgmcp settings: every process runs with its defaults.
fn spawn(mut cmd: Command, log: &Path, name: &str) -> Result<Child> {
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") || key == "RUST_LOG" || key.starts_with("PGMCP_") {
            cmd.env_remove(key);
        }
    }
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {name}"))
}

/// A free loopback port (bound, then released for the child to bind).
fn free_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// True when the worker's health service says `pgmcp.v1.Worker` is SERVING.
async fn worker_serving(addr: SocketAddr) -> bool {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(Duration::from_millis(200))
            .connect()
            .await
            .ok()?;
        worker_is_serving(&mut HealthClient::new(channel))
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(1), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// True when `GET /readyz` answers 200.
async fn gateway_ready(addr: SocketAddr) -> bool {
    let check = async {
        let mut conn = HttpConn::connect(addr).await.ok()?;
        let (status, _) = conn.get("/readyz").await.ok()?;
        Some(status == 200)
    };
    tokio::time::timeout(Duration::from_secs(2), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }
}

/// Samples the RSS of some processes in the background and keeps the
/// largest value seen of each.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Vec<AtomicU64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pids: &[u32]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(pids.iter().map(|_| AtomicU64::new(0)).collect());
        let pids = pids.to_vec();
        let (s, p) = (stop.clone(), peaks.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                for (pid, peak) in pids.iter().zip(p.iter()) {
                    if let Ok(m) = Memory::of(*pid) {
                        peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RssSampler { stop, peaks, task }
    }

    /// Stops sampling; the peak RSS (KiB) of each process, in order.
    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

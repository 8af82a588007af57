//! Workers and gateways as real processes, for what only a whole process
//! shows: its own OpenTelemetry setup from `OTEL_*` variables, its service
//! name, its JSON logs, its flush on SIGTERM.
//!
//! Each process listens on a port of its choosing (`127.0.0.1:0`) unless
//! told one ([`Proc::worker_on`]) and logs in JSON; the address is read from
//! its "listening" log line. Every stderr
//! line is kept for inspection ([`Proc::logs`]).

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::bins;

/// A running `pgmcp-worker` or `pgmcp-gateway`.
pub struct Proc {
    name: &'static str,
    /// The address it serves on (gRPC for a worker, HTTP for a gateway).
    pub addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

/// How long a process gets to become ready, and to exit after SIGTERM.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

impl Proc {
    /// Starts a worker serving `database_url`, with extra `flags` and `env`.
    pub async fn worker(database_url: &str, flags: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        Self::worker_on("127.0.0.1:0", database_url, flags, env).await
    }

    /// Starts a worker listening on `listen` (e.g. the `addr` of a worker
    /// that was killed, to restart it in place), serving `database_url`,
    /// with extra `flags` and `env`.
    pub async fn worker_on(
        listen: &str,
        database_url: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut args = vec!["--listen", listen, "--database-url", database_url];
        args.extend_from_slice(flags);
        Self::start("pgmcp-worker", &args, env, "worker listening").await
    }

    /// Starts a gateway for `workers` (URLs), with extra `flags` and `env`.
    pub async fn gateway(workers: &[String], flags: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let workers = workers.join(",");
        let mut args = vec!["--listen", "127.0.0.1:0", "--workers", workers.as_str()];
        args.extend_from_slice(flags);
        Self::start(
            "pgmcp-gateway",
            &args,
            env,
            "gateway listening; MCP at /mcp",
        )
        .await
    }

    /// As [`Proc::gateway`], but the gateway resolves host names through
    /// `hosts` (a file in `/etc/hosts` format) instead of the system's: it
    /// runs in a mount namespace of its own where `hosts` is bind-mounted
    /// over `/etc/hosts` (`unshare`, as root). The C library reads the file
    /// on every lookup, so rewriting `hosts` in place changes what names
    /// resolve to — a DNS server under the test's control.
    pub async fn gateway_resolving(
        hosts: &std::path::Path,
        workers: &[String],
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let workers = workers.join(",");
        let mut args = vec!["--listen", "127.0.0.1:0", "--workers", workers.as_str()];
        args.extend_from_slice(flags);
        let hosts = hosts.to_str().context("hosts file path is not UTF-8")?;
        let bin = bins::bin("pgmcp-gateway")?;
        let bin = bin.to_str().context("gateway path is not UTF-8")?;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
            hosts,
            bin,
        ]);
        Self::start_command(
            "pgmcp-gateway",
            cmd,
            &args,
            env,
            "gateway listening; MCP at /mcp",
        )
        .await
    }

    async fn start(
        name: &'static str,
        args: &[&str],
        env: &[(&str, &str)],
        ready_message: &str,
    ) -> Result<Self> {
        let cmd = Command::new(bins::bin(name)?);
        Self::start_command(name, cmd, args, env, ready_message).await
    }

    async fn start_command(
        name: &'static str,
        mut cmd: Command,
        args: &[&str],
        env: &[(&str, &str)],
        ready_message: &str,
    ) -> Result<Self> {
        cmd.args(args)
            .args(["--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Only what the test asks for: no inherited telemetry settings.
        for (key, _) in std::env::vars() {
            if key.starts_with("OTEL_") || key == "RUST_LOG" || key.starts_with("PGMCP_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match sink.lock() {
                    Ok(mut l) => l.push(line),
                    Err(p) => p.into_inner().push(line),
                }
            }
        });
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(addr) = snapshot(&logs)
                .iter()
                .find_map(|l| listening(l, ready_message))
            {
                return Ok(Proc {
                    name,
                    addr,
                    child,
                    logs,
                });
            }
            if let Some(status) = child.try_wait()? {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "{name} exited ({status}) before it was ready:\n{}",
                    snapshot(&logs).join("\n")
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{name} not ready within {READY_TIMEOUT:?}:\n{}",
                    snapshot(&logs).join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `addr` field of the first JSON log line whose message is
    /// `message` (e.g. the worker's "metrics at /metrics").
    pub fn logged_addr(&self, message: &str) -> Option<SocketAddr> {
        self.logs().iter().find_map(|l| listening(l, message))
    }

    /// The process's stderr lines so far.
    pub fn logs(&self) -> Vec<String> {
        snapshot(&self.logs)
    }

    /// The process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        let pid = self.child.id()?;
        Some(nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?))
    }

    /// Sends `signal` to the process (e.g. SIGSTOP to freeze it, SIGCONT to
    /// let it go on).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} has exited", self.name))?;
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("sending {signal} to {}", self.name))?;
        Ok(())
    }

    /// Kills the process (SIGKILL): no drain, no goodbye.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit (killing it after a while).
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                // Let the stderr reader take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(status?)
            }
            Err(_) => {
                self.child.kill().await?;
                bail!(
                    "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.name
                )
            }
        }
    }
}

fn snapshot(logs: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    match logs.lock() {
        Ok(l) => l.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// The `addr` of a JSON log line whose message is `message`.
fn listening(line: &str, message: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != message {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

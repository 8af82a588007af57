//! The gateway's connections to its workers, as real processes on loopback.
//!
//! - A worker that stops answering without closing anything (SIGSTOP: the
//!   kernel still acknowledges its TCP segments, so its health `Watch`
//!   stream just goes silent) is taken out of rotation by the HTTP/2
//!   keepalive of the gateway's channel (a ping every 10 s, 5 s to answer),
//!   and rejoins once it runs again (SIGCONT).
//! - A worker with a maximum connection age closes the gateway's connection
//!   gracefully (GOAWAY) when it is that old; the gateway opens a new one,
//!   and no call fails meanwhile.
//!
//! Every test is bounded in time ([`TEST_TIMEOUT`]) and in calls.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use pgmcp_tests::Pg;
use pgmcp_tests::fleet::{app_cluster, bounded, gateway, warm_up, who};
use pgmcp_tests::procs::Proc;

/// The most any test here may take, start-up included.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// The gateway's keepalive (10 s interval + 5 s timeout), with room to spare.
const KEEPALIVE_DETECTION: Duration = Duration::from_secs(30);
/// How long a worker that runs again may take to rejoin the rotation.
const REJOIN: Duration = Duration::from_secs(15);

/// Starts a worker named `name` for database `app`.
async fn worker(pg: &Pg, name: &str, extra: &[&str]) -> Result<Proc> {
    let mut flags = vec!["--name", name, "--pool-max-connections", "4"];
    flags.extend_from_slice(extra);
    Proc::worker(&pg.owner_url("app"), &flags, &[]).await
}

/// `pgmcp_gateway_worker_up` of `worker` (its URL) on the gateway's
/// `/metrics`; `None` when there is no such series.
async fn worker_up(gateway: &Proc, worker: &Proc) -> Result<Option<f64>> {
    let body = reqwest::get(format!("{}/metrics", gateway.url()))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let label = format!("worker=\"{}\"", worker.url());
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("pgmcp_gateway_worker_up{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if labels.split(',').any(|l| l == label) {
            return Ok(Some(value.trim().parse()?));
        }
    }
    Ok(None)
}

/// Polls the gateway's up gauge of `worker` until it is `want`, within
/// `within`; how long that took.
async fn wait_for_up(
    gateway: &Proc,
    worker: &Proc,
    want: f64,
    within: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let mut last = None;
    // At most within / 200 ms scrapes.
    while started.elapsed() <= within {
        last = worker_up(gateway, worker).await?;
        if last == Some(want) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "the gateway's pgmcp_gateway_worker_up of {} was {last:?}, not {want}, {within:?} on; the gateway logged:\n{}",
        worker.url(),
        gateway.logs().join("\n")
    )
}

/// The reasons the gateway logged for taking `worker` out of rotation.
fn leave_reasons(gateway: &Proc, worker: &Proc) -> Vec<String> {
    gateway
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"] == "worker leaves the rotation"
                && v["fields"]["worker"] == worker.url().as_str()
        })
        .map(|v| {
            v["fields"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A process stopped with SIGSTOP; SIGCONTed when dropped, so a failing
/// test does not leave it frozen.
struct Frozen<'a>(Option<&'a Proc>);

impl<'a> Frozen<'a> {
    fn freeze(p: &'a Proc) -> Result<Self> {
        p.signal(Signal::SIGSTOP)?;
        Ok(Frozen(Some(p)))
    }

    fn thaw(mut self) -> Result<()> {
        match self.0.take() {
            Some(p) => p.signal(Signal::SIGCONT),
            None => Ok(()),
        }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.signal(Signal::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_takes_a_frozen_worker_out_of_rotation_until_it_runs_again() -> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("").await?;
        let w1 = worker(&pg, "w1", &[]).await?;
        let w2 = worker(&pg, "w2", &[]).await?;
        let (g, client) = gateway(&[&w1, &w2], &[]).await?;
        warm_up(&client, &["w1", "w2"]).await?;
        wait_for_up(&g, &w1, 1.0, Duration::from_secs(10)).await?;
        wait_for_up(&g, &w2, 1.0, Duration::from_secs(10)).await?;

        // No calls while w1 is frozen and still in rotation: only the
        // health watch (and its connection's keepalive) can notice.
        let frozen = Frozen::freeze(&w1)?;
        let took = wait_for_up(&g, &w1, 0.0, KEEPALIVE_DETECTION).await?;
        let reasons = leave_reasons(&g, &w1);
        eprintln!("w1 left the rotation {took:?} after SIGSTOP: {reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("health stream failed")),
            "w1 left the rotation, but not because its health stream failed: {reasons:?}"
        );
        assert_eq!(worker_up(&g, &w2).await?, Some(1.0), "w2 left too");

        // Every read now goes to w2, each within its timeout.
        for i in 0..20 {
            match who(&client).await? {
                Ok(w) => assert_eq!(w, "w2", "read {i} with w1 frozen"),
                Err(e) => bail!("read {i} with w1 frozen failed: {e}"),
            }
        }

        // Running again, w1 rejoins and takes calls.
        let thawed = Instant::now();
        frozen.thaw()?;
        wait_for_up(&g, &w1, 1.0, REJOIN).await?;
        let mut seen = BTreeSet::new();
        for i in 0..100 {
            match who(&client).await? {
                Ok(w) => {
                    seen.insert(w);
                }
                Err(e) => bail!("read {i} after SIGCONT failed: {e}"),
            }
            if seen.contains("w1") {
                break;
            }
            if thawed.elapsed() > REJOIN {
                break;
            }
        }
        assert!(
            seen.contains("w1"),
            "w1 took no read within {REJOIN:?} of SIGCONT; reads went to {seen:?}"
        );
        eprintln!("w1 took reads again {:?} after SIGCONT", thawed.elapsed());
        Ok(())
    })
    .await
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Socket {
    local: SocketAddr,
    remote: SocketAddr,
    /// The kernel's TCP state (`0x01` is ESTABLISHED).
    state: u8,
}

const ESTABLISHED: u8 = 0x01;

/// An address of `/proc/net/tcp{,6}`: `ADDR:PORT` in hex, the address as
/// the kernel's 32-bit words in host byte order, the port as a number.
fn proc_addr(s: &str) -> Result<SocketAddr> {
    let (addr, port) = s.split_once(':').context("no port")?;
    let port = u16::from_str_radix(port, 16)?;
    let word = |i: usize| -> Result<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8).context("short address")?;
        Ok(u32::from_str_radix(hex, 16)?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        n => bail!("an address of {n} hex digits"),
    };
    Ok(SocketAddr::new(ip, port))
}

/// The sockets listed in a `/proc/net/tcp{,6}` text.
fn parse_proc_net_tcp(text: &str) -> Result<Vec<Socket>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let mut next = || {
                fields
                    .next()
                    .with_context(|| format!("short line `{line}`"))
            };
            let local = proc_addr(next()?)?;
            let remote = proc_addr(next()?)?;
            let state = u8::from_str_radix(next()?, 16)?;
            Ok(Socket {
                local,
                remote,
                state,
            })
        })
        .collect()
}

/// Local ports of the ESTABLISHED TCP connections to port `port` (on any
/// address, IPv4 or IPv6).
fn established_to(port: u16) -> Result<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.ends_with('6') => {
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {file}")),
        };
        for s in parse_proc_net_tcp(&text).with_context(|| format!("parsing {file}"))? {
            if s.state == ESTABLISHED && s.remote.port() == port {
                ports.insert(s.local.port());
            }
        }
    }
    Ok(ports)
}

#[test]
fn proc_net_tcp_lines_are_parsed() -> Result<()> {
    let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
              0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 20 4 30 10 -1\n";
    let got = parse_proc_net_tcp(v4)?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        got,
        vec![Socket {
            local: SocketAddr::new(localhost, 8080),
            remote: SocketAddr::new(localhost, 50000),
            state: ESTABLISHED,
        }]
    );
    let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
              0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n";
    let got = parse_proc_net_tcp(v6)?;
    let localhost = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(
        got,
        vec![Socket {
            local: SocketAddr::new(localhost, 8080),
            remote: SocketAddr::new(localhost, 50000),
            state: 0x0A,
        }]
    );
    Ok(())
}

/// What a steady stream of reads saw while the worker's connections aged.
struct Rotation {
    calls: u32,
    /// The failed reads' messages.
    failures: Vec<String>,
    /// Local ports of the gateway's ESTABLISHED connections to the worker,
    /// over all samples.
    ports: BTreeSet<u16>,
    /// What the gateway logged about the worker's rotation, and the
    /// internal errors it logged (a failed read's details).
    rotation_logs: Vec<String>,
}

/// One worker with a maximum connection age of 1 s, one gateway, and reads
/// for 4 s (at most 2000), one every 10 ms or so, while the gateway's
/// connections to the worker are sampled every 20 ms.
async fn reads_while_connections_age() -> Result<Rotation> {
    let pg = app_cluster("").await?;
    let w = worker(&pg, "w1", &["--max-connection-age-s", "1"]).await?;
    let (g, client) = gateway(&[&w], &[]).await?;
    warm_up(&client, &["w1"]).await?;

    let port = w.addr.port();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut samples = 0u32;
            while !stop.load(Ordering::Relaxed) && samples < 1000 {
                seen.extend(established_to(port)?);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(seen)
        })
    };

    let started = Instant::now();
    let mut calls = 0u32;
    let mut failures = Vec::new();
    while started.elapsed() < Duration::from_secs(4) && calls < 2000 {
        calls += 1;
        match who(&client).await? {
            Ok(name) => assert_eq!(name, "w1", "read {calls}"),
            Err(e) => failures.push(format!("read {calls}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let ports = sampler.await??;
    let rotation_logs = g
        .logs()
        .into_iter()
        .filter(|l| l.contains("the rotation") || l.contains("internal error"))
        .collect();
    eprintln!(
        "{calls} reads in {:?}, {} failed; the gateway's connections used local ports {ports:?}",
        started.elapsed(),
        failures.len()
    );
    Ok(Rotation {
        calls,
        failures,
        ports,
        rotation_logs,
    })
}

/// The worker closes the gateway's connection every second (GOAWAY); the
/// gateway opens new ones, a call that raced a GOAWAY is sent again (it
/// never left the gateway, or left on a stream the GOAWAY declared
/// unprocessed), and the worker never leaves the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_connections_are_replaced_without_a_failed_call() -> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let r = reads_while_connections_age().await?;
        assert!(r.calls > 0, "no read was made");
        assert!(
            r.ports.len() > 1,
            "the gateway kept one connection to the worker ({:?}) for 4 s of a 1 s max connection age",
            r.ports
        );
        assert!(
            r.failures.is_empty()
                && !r.rotation_logs.iter().any(|l| l.contains("leaves the rotation")),
            "{} of {} reads failed while the worker closed aged connections: {:#?}\nthe gateway logged:\n{}",
            r.failures.len(),
            r.calls,
            r.failures,
            r.rotation_logs.join("\n")
        );
        Ok(())
    })
    .await
}

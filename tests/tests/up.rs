//! `pgmcp up` end to end: the real binary starts a throwaway PostgreSQL with
//! the demo database, a worker and a gateway as processes (or two gateways
//! over three workers); a real MCP client queries the demo; Ctrl-C (SIGINT)
//! stops every process and deletes the cluster's files.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::timeout;

/// A running `pgmcp up`, as its output described it.
struct Up {
    child: tokio::process::Child,
    pid: u32,
    /// Stops it gently if the test fails before [`Up::interrupt`].
    guard: StopOnDrop,
    /// The cluster's files, from the `PostgreSQL data: …` line.
    data_dir: PathBuf,
    /// From the `MCP endpoint: …` lines, in order.
    endpoints: Vec<String>,
    /// Every process `pgmcp up` started, seen once all endpoints were out.
    started: Vec<Proc>,
}

impl Up {
    /// Runs `pgmcp up` with `args` and reads its output until it printed
    /// `endpoints` MCP endpoints (within 90 s).
    async fn start(args: &[String], endpoints: usize) -> Result<Up> {
        let exe = tokio::task::spawn_blocking(|| pgmcp_tests::bins::bin("pgmcp")).await??;
        let mut child = tokio::process::Command::new(exe)
            .arg("up")
            .args(args)
            .env_remove("PGMCP_UP_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting pgmcp up")?;
        let pid = child.id().context("pgmcp up has no pid")?;
        let guard = StopOnDrop(Some(Pid::from_raw(i32::try_from(pid)?)));
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();

        let mut data_dir = None;
        let mut urls = Vec::new();
        timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(dir) = line.strip_prefix("PostgreSQL data: ") {
                    data_dir = Some(PathBuf::from(dir));
                }
                if let Some(url) = line.strip_prefix("MCP endpoint: ") {
                    urls.push(url.to_string());
                    if urls.len() == endpoints {
                        return Ok(());
                    }
                }
            }
            bail!("pgmcp up closed stdout after printing {urls:?} as MCP endpoints")
        })
        .await
        .with_context(|| format!("pgmcp up printed no {endpoints} MCP endpoints within 90 s"))??;
        let data_dir = data_dir.context("pgmcp up printed no `PostgreSQL data: …` line")?;
        assert!(data_dir.is_dir(), "{} does not exist", data_dir.display());
        // Keep reading so that pgmcp up never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Up {
            child,
            pid,
            guard,
            data_dir,
            endpoints: urls,
            started: descendants(pid),
        })
    }

    /// Ctrl-C: checks that `pgmcp up` exits 0 within 20 s, that every
    /// process it started is gone, that none of `ports` accepts
    /// connections any more and that the cluster's files are deleted.
    async fn interrupt(mut self, ports: &[u16]) -> Result<()> {
        kill(Pid::from_raw(i32::try_from(self.pid)?), Signal::SIGINT)?;
        let status = timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("pgmcp up did not exit within 20 s of SIGINT")??;
        self.guard.0 = None;
        assert!(status.success(), "pgmcp up exited with {status}");

        let left: Vec<&Proc> = self.started.iter().filter(|p| p.still_running()).collect();
        assert!(
            left.is_empty(),
            "still running after pgmcp up exited: {left:#?}"
        );
        for port in ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
                "port {port} still accepts connections"
            );
        }
        assert!(
            !self.data_dir.exists(),
            "{} was not deleted",
            self.data_dir.display()
        );
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_demo_and_stops_everything_on_ctrl_c() -> Result<()> {
    let port = free_port()?;
    let up = Up::start(&["--port".into(), port.to_string()], 1).await?;
    assert_eq!(up.endpoints, [format!("http://127.0.0.1:{port}/mcp")]);

    // Every process pgmcp up started, remembered by pid and start time.
    for what in ["worker", "gateway", "postgres"] {
        assert!(
            up.started.iter().any(|p| p.cmdline.contains(what)),
            "no {what} among the children of pgmcp up: {:#?}",
            up.started
        );
    }

    let client = mcp::http_client(&up.endpoints[0]).await?;
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT count(*) AS n FROM customers"}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["columns"][0]["name"], "n", "{s}");
    let n = &s["rows"][0][0];
    assert!(*n == json!(240) || *n == json!("240"), "{s}");

    // The views and foreign keys hold together: every order has lines.
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT count(*) AS orders, count(*) FILTER (WHERE lines > 0) AS with_lines FROM order_totals"}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let row = &structured(&res)["rows"][0];
    assert!(row[0] == json!(600) || row[0] == json!("600"), "{row}");
    assert_eq!(row[0], row[1], "{row}");

    // The demo is served read-only.
    let res = mcp::call_tool(&client, "query", json!({"sql": "DELETE FROM order_items"})).await?;
    assert!(is_error(&res), "a DELETE went through: {}", text(&res));
    let _ = client.cancel().await;

    up.interrupt(&[port]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_two_gateways_over_three_workers_and_stops_them_all() -> Result<()> {
    timeout(Duration::from_secs(180), async {
        let port = free_port_pair()?;
        let up = Up::start(
            &[
                "--port".into(),
                port.to_string(),
                "--gateways".into(),
                "2".into(),
                "--workers".into(),
                "3".into(),
            ],
            2,
        )
        .await?;
        assert_eq!(
            up.endpoints,
            [
                format!("http://127.0.0.1:{port}/mcp"),
                format!("http://127.0.0.1:{}/mcp", port + 1),
            ]
        );
        let count = |what: &str| {
            up.started
                .iter()
                .filter(|p| p.cmdline.contains(what))
                .count()
        };
        assert_eq!(count(" worker "), 3, "{:#?}", up.started);
        assert_eq!(count(" gateway "), 2, "{:#?}", up.started);

        let workers = ["pgmcp-worker-1", "pgmcp-worker-2", "pgmcp-worker-3"];
        let mut everywhere = BTreeSet::new();
        for url in &up.endpoints {
            let client = mcp::http_client(url).await?;
            // Each gateway knows all three workers, all serving.
            let res = mcp::call_tool(&client, "fleet_status", json!({})).await?;
            assert!(!is_error(&res), "{}", text(&res));
            let s = structured(&res);
            assert_eq!(s["workers_total"], 3, "{url}: {s}");
            assert_eq!(s["workers_reachable"], 3, "{url}: {s}");
            let ids: BTreeSet<&str> = s["workers"]
                .as_array()
                .context("no workers")?
                .iter()
                .filter_map(|w| w["worker_id"].as_str())
                .collect();
            assert_eq!(ids, workers.into_iter().collect(), "{url}: {s}");

            // And spreads calls over them (at most 60 calls).
            let mut seen = BTreeSet::new();
            for _ in 0..60 {
                let res = mcp::call_tool(
                    &client,
                    "query",
                    json!({"sql": "SELECT current_setting('application_name')"}),
                )
                .await?;
                assert!(!is_error(&res), "{url}: {}", text(&res));
                let w = structured(&res)["rows"][0][0]
                    .as_str()
                    .context("no worker name")?
                    .to_string();
                assert!(workers.contains(&w.as_str()), "{url}: served by {w}");
                seen.insert(w);
                if seen.len() == workers.len() {
                    break;
                }
            }
            assert!(seen.len() > 1, "{url} sent every call to {seen:?}");
            everywhere.extend(seen);
            let _ = client.cancel().await;
        }
        assert_eq!(everywhere.len(), 3, "calls reached only {everywhere:?}");

        up.interrupt(&[port, port + 1]).await
    })
    .await
    .context("the test did not finish within 180 s")?
}

/// If the test fails early, stops `pgmcp up` the gentle way so that it
/// still stops its children (a SIGKILL would not let it).
struct StopOnDrop(Option<Pid>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A free port whose successor is free too (for two gateways).
fn free_port_pair() -> Result<u16> {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = first.local_addr()?.port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no two consecutive free ports")
}

/// A process seen in /proc.
#[derive(Debug)]
struct Proc {
    pid: u32,
    start_time: String,
    cmdline: String,
}

impl Proc {
    /// True while the same process (same pid and start time) exists.
    fn still_running(&self) -> bool {
        start_time(self.pid).is_some_and(|t| t == self.start_time)
    }
}

/// All descendants of `pid`, found through /proc/<pid>/task/*/children.
fn descendants(pid: u32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                let Some(start_time) = start_time(child) else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{child}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default();
                out.push(Proc {
                    pid: child,
                    start_time,
                    cmdline,
                });
                todo.push(child);
            }
        }
    }
    out
}

/// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the command come fields 3 (state) onwards.
    after_comm
        .split_whitespace()
        .nth(22 - 3)
        .map(str::to_string)
}

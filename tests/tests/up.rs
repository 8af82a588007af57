//! `pgmcp up` end to end: the real binary starts a throwaway PostgreSQL with
//! the demo database, a worker and a gateway as processes; a real MCP client
//! queries the demo; Ctrl-C (SIGINT) stops every process and deletes the
//! cluster's files.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_demo_and_stops_everything_on_ctrl_c() -> Result<()> {
    let exe = tokio::task::spawn_blocking(|| pgmcp_tests::bins::bin("pgmcp")).await??;
    let port = free_port()?;
    let mut up = tokio::process::Command::new(exe)
        .args(["up", "--port", &port.to_string()])
        .env_remove("PGMCP_UP_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting pgmcp up")?;
    let pid = up.id().context("pgmcp up has no pid")?;
    let mut guard = StopOnDrop(Some(Pid::from_raw(i32::try_from(pid)?)));
    let mut lines = BufReader::new(up.stdout.take().context("no stdout")?).lines();

    let mut data_dir = None;
    let url = timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(dir) = line.strip_prefix("PostgreSQL data: ") {
                data_dir = Some(PathBuf::from(dir));
            }
            if let Some(url) = line.strip_prefix("MCP endpoint: ") {
                return Ok(url.to_string());
            }
        }
        bail!("pgmcp up closed stdout without printing `MCP endpoint: …`")
    })
    .await
    .context("pgmcp up printed no MCP endpoint within 90 s")??;
    assert_eq!(url, format!("http://127.0.0.1:{port}/mcp"));
    let data_dir = data_dir.context("pgmcp up printed no `PostgreSQL data: …` line")?;
    assert!(data_dir.is_dir(), "{} does not exist", data_dir.display());
    // Keep reading so that pgmcp up never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Every process pgmcp up started, remembered by pid and start time.
    let started = descendants(pid);
    for what in ["worker", "gateway", "postgres"] {
        assert!(
            started.iter().any(|p| p.cmdline.contains(what)),
            "no {what} among the children of pgmcp up: {started:#?}"
        );
    }

    let client = mcp::http_client(&url).await?;
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

    // Ctrl-C.
    kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGINT)?;
    let status = timeout(Duration::from_secs(20), up.wait())
        .await
        .context("pgmcp up did not exit within 20 s of SIGINT")??;
    guard.0 = None;
    assert!(status.success(), "pgmcp up exited with {status}");

    let left: Vec<&Proc> = started.iter().filter(|p| p.still_running()).collect();
    assert!(
        left.is_empty(),
        "still running after pgmcp up exited: {left:#?}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the gateway port {port} still accepts connections"
    );
    assert!(!data_dir.exists(), "{} was not deleted", data_dir.display());
    Ok(())
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

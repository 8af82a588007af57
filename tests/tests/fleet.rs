//! The fleet as real processes: 2 gateways × 3 workers × 1 PostgreSQL,
//! several MCP clients spread over both gateways under steady read load.
//! Workers are found through a workers file the gateways read again every
//! 300 ms (the same path as `dns://` entries); each call reports which
//! worker served it through `application_name`, which is the worker's name.
//! Last, a gateway stopped with a call in flight finishes it before exiting.
//! The test is bounded in time ([`TEST_TIMEOUT`]) and its load in calls
//! ([`MAX_LOAD_CALLS`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pgmcp_tests::Pg;
use pgmcp_tests::fleet::WHO;
use pgmcp_tests::mcp::{self, Client, is_error, structured, text};
use pgmcp_tests::procs::Proc;
use serde_json::json;

const SECRET: &str = "fleet-test-cursor-key-0123456789";

/// Starts a worker named `name` for `database`.
async fn worker(pg: &Pg, database: &str, name: &str) -> Result<Proc> {
    Proc::worker(
        &pg.owner_url(database),
        &[
            "--name",
            name,
            "--pool-max-connections",
            "4",
            "--shutdown-grace-ms",
            "5000",
            "--drain-delay-ms",
            "500",
        ],
        &[],
    )
    .await
}

/// Writes the workers file the gateways watch.
fn list(path: &std::path::Path, workers: &[&Proc]) -> Result<()> {
    let lines: Vec<String> = workers.iter().map(|w| w.url()).collect();
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(())
}

/// Calls per worker name, and the failures, of the load.
#[derive(Default)]
struct Tally {
    by_worker: BTreeMap<String, usize>,
    failures: Vec<String>,
}

struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// One task per client, each calling `query` in a loop; at most
    /// [`MAX_LOAD_CALLS`] calls in all (reaching the cap counts as a failure).
    fn start(clients: &[Arc<Client>]) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let tasks = clients
            .iter()
            .map(|c| {
                let (c, tally, stop, made) = (c.clone(), tally.clone(), stop.clone(), made.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if made.fetch_add(1, Ordering::Relaxed) >= MAX_LOAD_CALLS {
                            let mut t = match tally.lock() {
                                Ok(t) => t,
                                Err(p) => p.into_inner(),
                            };
                            t.failures.push(format!(
                                "the load reached its cap of {MAX_LOAD_CALLS} calls"
                            ));
                            break;
                        }
                        let res =
                            mcp::call_tool(&c, "query", json!({"sql": WHO, "database": "app"}))
                                .await;
                        {
                            let mut t = match tally.lock() {
                                Ok(t) => t,
                                Err(p) => p.into_inner(),
                            };
                            match res {
                                Ok(r) if !is_error(&r) => {
                                    let w = structured(&r)["rows"][0][0]
                                        .as_str()
                                        .unwrap_or("?")
                                        .to_string();
                                    *t.by_worker.entry(w).or_default() += 1;
                                }
                                Ok(r) => t.failures.push(text(&r)),
                                Err(e) => t.failures.push(format!("{e:#}")),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Load { tally, stop, tasks }
    }

    /// Calls per worker and failures since the last reset; resets.
    fn take(&self) -> Tally {
        match self.tally.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    /// Waits until `pred` holds for the calls since the last reset.
    async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Tally) -> bool,
    ) -> Result<()> {
        let until = Instant::now() + within;
        loop {
            let ok = match self.tally.lock() {
                Ok(t) => pred(&t),
                Err(p) => pred(&p.into_inner()),
            };
            if ok {
                return Ok(());
            }
            if Instant::now() > until {
                let t = self.take();
                bail!(
                    "{what} not within {within:?}: {:?}, failures {:?}",
                    t.by_worker,
                    t.failures
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn assert_no_failures(t: &Tally, phase: &str) {
    assert!(
        t.failures.is_empty(),
        "{phase}: {} failed calls: {:?}",
        t.failures.len(),
        t.failures
    );
}

/// The most the fleet test may take, start-up included.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The most calls the load makes in all (about 100 a second are made).
const MAX_LOAD_CALLS: usize = 20_000;

#[tokio::test]
async fn two_gateways_three_workers_survive_kill_drain_scale_out_and_a_database_restart()
-> Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, fleet_under_load())
        .await
        .with_context(|| format!("the fleet test did not finish within {TEST_TIMEOUT:?}"))?
}

async fn fleet_under_load() -> Result<()> {
    let mut pg = Pg::start()?;
    pg.create_db("app").await?;
    pg.create_db("sales").await?;
    pg.exec(
        "app",
        "CREATE TABLE n AS SELECT g AS n FROM generate_series(1, 50) g",
    )
    .await?;

    let mut w1 = worker(&pg, "app", "w1").await?;
    let mut w2 = worker(&pg, "app", "w2").await?;
    let w3 = worker(&pg, "app", "w3").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("workers");
    list(&file, &[&w1, &w2, &w3])?;
    let file_arg = file.to_string_lossy().to_string();
    let flags = [
        "--workers-file",
        file_arg.as_str(),
        "--discovery-interval-ms",
        "300",
        "--cursor-secret",
        SECRET,
    ];
    let g1 = Proc::gateway(&[], &flags, &[]).await?;
    let mut g2 = Proc::gateway(&[], &flags, &[]).await?;
    let mut clients = Vec::new();
    for g in [&g1, &g2, &g1, &g2] {
        clients.push(Arc::new(
            mcp::http_client(&format!("{}/mcp", g.url())).await?,
        ));
    }

    // (1) Calls reach all three workers.
    let load = Load::start(&clients);
    load.wait_for("calls on all three workers", Duration::from_secs(15), |t| {
        ["w1", "w2", "w3"]
            .iter()
            .all(|w| t.by_worker.get(*w).is_some_and(|n| *n >= 5))
    })
    .await?;
    assert_no_failures(&load.take(), "warm-up");

    // (2) One worker SIGKILLed: zero failed calls.
    w1.kill().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = load.take();
    assert_no_failures(&t, "after SIGKILL");
    assert!(
        t.by_worker.values().sum::<usize>() > 20,
        "{:?}",
        t.by_worker
    );

    // (3) Another SIGTERMed: zero failed calls; it exits, cleanly, within
    // its grace period.
    let stopping = Instant::now();
    let status = w2.stop().await?;
    let took = stopping.elapsed();
    assert!(status.success(), "w2 exited with {status}");
    assert!(took < Duration::from_secs(5), "w2 took {took:?} to stop");
    assert_no_failures(&load.take(), "while draining");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = load.take();
    assert_no_failures(&t, "after SIGTERM");
    assert_eq!(
        t.by_worker.keys().collect::<Vec<_>>(),
        ["w3"],
        "{:?}",
        t.by_worker
    );

    // (4) A worker added while running gets a fair share within 5 s.
    let w4 = worker(&pg, "app", "w4").await?;
    list(&file, &[&w3, &w4])?;
    load.wait_for("calls on the new worker", Duration::from_secs(5), |t| {
        t.by_worker.get("w4").is_some_and(|n| *n >= 1)
    })
    .await?;
    load.take();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = load.take();
    assert_no_failures(&t, "after scale-out");
    let (n3, n4) = (
        t.by_worker.get("w3").copied().unwrap_or(0),
        t.by_worker.get("w4").copied().unwrap_or(0),
    );
    assert!(
        n4 * 3 >= n3 && n3 * 3 >= n4,
        "unfair split after scale-out: w3 {n3}, w4 {n4}"
    );

    // (6) Two databases on different workers route correctly.
    let w5 = worker(&pg, "sales", "w5").await?;
    list(&file, &[&w3, &w4, &w5])?;
    // Both gateways discover it, each on its own schedule.
    let until = Instant::now() + Duration::from_secs(5);
    for client in &clients[..2] {
        loop {
            let res =
                mcp::call_tool(client, "query", json!({"sql": WHO, "database": "sales"})).await?;
            if !is_error(&res) {
                assert_eq!(structured(&res)["rows"][0][0], "w5");
                break;
            }
            if Instant::now() > until {
                bail!("database `sales` not served within 5 s: {}", text(&res));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for _ in 0..10 {
        let res = mcp::call_tool(
            &clients[0],
            "query",
            json!({"sql": WHO, "database": "sales"}),
        )
        .await?;
        assert_eq!(structured(&res)["rows"][0][0], "w5", "{}", text(&res));
    }
    let res = mcp::call_tool(
        &clients[0],
        "query",
        json!({"sql": "SELECT 1", "database": "nope"}),
    )
    .await?;
    mcp::assert_tool_error(&res, "unknown_database", "available: app, sales");
    let t = load.take();
    assert_no_failures(&t, "with two databases");
    assert!(
        !t.by_worker.contains_key("w5"),
        "`app` calls reached w5: {:?}",
        t.by_worker
    );

    // (7) Paging continues across gateways.
    let mut seen = Vec::new();
    let mut args = json!({"sql": "SELECT n FROM n ORDER BY n", "page_size": 10, "database": "app"});
    for page in 0..10 {
        let res = mcp::call_tool(&clients[page % 2], "query", args.clone()).await?;
        assert!(!is_error(&res), "page {page}: {}", text(&res));
        let s = structured(&res);
        seen.extend(
            s["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| r[0].as_i64()),
        );
        match s["next_cursor"].as_str() {
            Some(c) => args = json!({"cursor": c}),
            None => break,
        }
    }
    assert_eq!(seen, (1..=50).map(Some).collect::<Vec<_>>());
    load.stop().await;

    // (5) PostgreSQL stopped: calls fail fast with a clear, retryable
    // error; restarted: calls succeed again within 5 s.
    pg.pause();
    for c in &clients[..2] {
        let started = Instant::now();
        let res = mcp::call_tool(c, "query", json!({"sql": WHO, "database": "app"})).await?;
        let took = started.elapsed();
        assert!(is_error(&res), "{}", text(&res));
        assert!(
            took < Duration::from_secs(5),
            "failing took {took:?}: {}",
            text(&res)
        );
        let e = &structured(&res)["error"];
        assert_eq!(e["kind"], "connection", "{}", text(&res));
        assert_eq!(e["retry_safe"], true, "{}", text(&res));
        assert!(text(&res).contains("cannot be reached"), "{}", text(&res));
    }
    pg.resume()?;
    let resumed = Instant::now();
    loop {
        let res =
            mcp::call_tool(&clients[0], "query", json!({"sql": WHO, "database": "app"})).await?;
        if !is_error(&res) {
            break;
        }
        if resumed.elapsed() > Duration::from_secs(5) {
            bail!("no success within 5 s of the restart: {}", text(&res));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &clients {
        let res = mcp::call_tool(c, "query", json!({"sql": WHO, "database": "app"})).await?;
        assert!(!is_error(&res), "{}", text(&res));
    }
    // No leaked connections: each worker holds at most its pool (4) and its
    // side connection.
    let sessions = pg
        .column(
            "app",
            "SELECT count(*)::text FROM pg_stat_activity WHERE application_name IN ('w3', 'w4', 'w5')",
        )
        .await?;
    let n: usize = sessions
        .first()
        .cloned()
        .flatten()
        .context("count")?
        .parse()?;
    assert!(n <= 15, "{n} sessions of the workers");

    // A gateway stopped with a call in flight finishes it, then exits.
    let on_g2 = clients[1].clone();
    let slow = tokio::spawn(async move {
        mcp::call_tool(
            &on_g2,
            "query",
            json!({"sql": "SELECT pg_sleep(1)", "database": "app"}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = g2.stop().await?;
    assert!(status.success(), "g2 exited with {status}");
    let res = slow.await??;
    assert!(!is_error(&res), "{}", text(&res));
    Ok(())
}

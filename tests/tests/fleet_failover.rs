//! Failover cases of the fleet, one at a time, as real processes on
//! loopback: a gateway in front of two workers of one PostgreSQL. Each call
//! reports which worker ran it through `application_name`, which is the
//! worker's name; the backend running a slow statement tells the same
//! through `pg_stat_activity`.
//!
//! - A write whose worker is SIGKILLed mid-statement fails with
//!   `retry_safe: false` and is not sent to the other worker.
//! - So does a VACUUM (a DBA write) whose worker is SIGKILLed while it
//!   waits for a lock.
//! - A worker at its concurrency limit refuses a read, which the other
//!   worker answers.
//! - A worker restarted on the same address rejoins the rotation.
//! - A worker SIGTERMed with a call in flight finishes it and exits 0 within
//!   its grace period, while new calls go to the other worker.
//!
//! Every test is bounded in time ([`TEST_TIMEOUT`]) and in calls.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_tests::Pg;
use pgmcp_tests::fleet::{app_cluster, bounded, gateway, warm_up, who};
use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::procs::Proc;
use serde_json::json;

/// The most any test here may take, start-up included.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// What a worker gets to finish calls in flight after SIGTERM.
const GRACE: Duration = Duration::from_secs(8);
/// How long a SIGTERMed worker keeps accepting calls after NOT_SERVING.
const DRAIN_DELAY: Duration = Duration::from_millis(500);

/// Starts a worker named `name` for database `app` on `listen`.
async fn worker_on(pg: &Pg, listen: &str, name: &str, extra: &[&str]) -> Result<Proc> {
    let grace = GRACE.as_millis().to_string();
    let drain = DRAIN_DELAY.as_millis().to_string();
    let mut flags = vec![
        "--name",
        name,
        "--pool-max-connections",
        "4",
        "--shutdown-grace-ms",
        grace.as_str(),
        "--drain-delay-ms",
        drain.as_str(),
    ];
    flags.extend_from_slice(extra);
    Proc::worker_on(listen, &pg.owner_url("app"), &flags, &[]).await
}

async fn worker(pg: &Pg, name: &str, extra: &[&str]) -> Result<Proc> {
    worker_on(pg, "127.0.0.1:0", name, extra).await
}

/// SIGKILLs whichever of `w1` and `w2` is named `ran_on` (it is running
/// `what`); returns the other's name.
async fn kill_the_one(
    ran_on: &str,
    w1: &mut Proc,
    w2: &mut Proc,
    what: &str,
) -> Result<&'static str> {
    match ran_on {
        "w1" => w1.kill().await.map(|()| "w2"),
        "w2" => w2.kill().await.map(|()| "w1"),
        name => bail!("the {what} ran on an unknown worker `{name}`"),
    }
}

/// The `application_name` (worker name) of the backend running a statement
/// that contains `marker`, waiting for one to show up within `within`.
async fn running(pg: &Pg, marker: &str, within: Duration) -> Result<String> {
    let until = Instant::now() + within;
    loop {
        if let Some(name) = active(pg, marker).await?.into_iter().next() {
            return Ok(name);
        }
        if Instant::now() > until {
            bail!("no backend ran `{marker}` within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Worker names of the backends running a statement containing `marker`.
async fn active(pg: &Pg, marker: &str) -> Result<Vec<String>> {
    Ok(pg
        .column(
            "app",
            &format!(
                "SELECT application_name FROM pg_stat_activity \
                 WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%{marker}%'"
            ),
        )
        .await?
        .into_iter()
        .flatten()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_worker_is_killed_fails_as_unsafe_to_retry_and_runs_at_most_once()
-> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("CREATE TABLE writes_log (who text NOT NULL)").await?;
        let mut w1 = worker(&pg, "w1", &["--mode", "read-write"]).await?;
        let mut w2 = worker(&pg, "w2", &["--mode", "read-write"]).await?;
        let (_g, client) = gateway(&[&w1, &w2], &[]).await?;
        let client = std::sync::Arc::new(client);
        warm_up(&client, &["w1", "w2"]).await?;

        // Each run of the write logs the worker that ran it, 3 s in.
        let write = {
            let client = client.clone();
            tokio::spawn(async move {
                mcp::call_tool(
                    &client,
                    "execute",
                    json!({
                        "sql": "INSERT INTO writes_log (who) \
                                SELECT current_setting('application_name') FROM pg_sleep(3)",
                        "database": "app",
                    }),
                )
                .await
            })
        };
        let ran_on = running(&pg, "INTO writes_log", Duration::from_secs(10)).await?;
        let other = kill_the_one(&ran_on, &mut w1, &mut w2, "write").await?;

        let res = tokio::time::timeout(Duration::from_secs(30), write)
            .await
            .context("the write did not end within 30 s of its worker's death")???;
        let msg = text(&res);
        assert!(is_error(&res), "the write succeeded: {msg}");
        assert_eq!(structured(&res)["error"]["retry_safe"], false, "{msg}");
        assert!(
            msg.contains("may or may not have been applied"),
            "the error does not say the write may have run: {msg}"
        );

        // Had the gateway sent it to the other worker, that backend would
        // be running it now, and log itself 3 s in. Wait until no backend
        // runs it (the killed worker's may still finish its statement).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let busy = active(&pg, "INTO writes_log").await?;
            assert!(
                !busy.iter().any(|w| w == other),
                "the write was sent to {other} too"
            );
            if busy.is_empty() {
                break;
            }
            if Instant::now() > until {
                bail!("the write still runs 15 s after it failed: {busy:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let runs = pg.column("app", "SELECT who FROM writes_log").await?;
        assert!(
            runs.len() <= 1,
            "the write ran {} times: {runs:?}",
            runs.len()
        );
        assert!(
            runs.iter().all(|w| w.as_deref() == Some(ran_on.as_str())),
            "the write ran on another worker than {ran_on}: {runs:?}"
        );

        // The surviving worker takes the next calls.
        for _ in 0..5 {
            match who(&client).await? {
                Ok(w) => assert_eq!(w, other),
                Err(e) => bail!("a read after the kill failed: {e}"),
            }
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vacuum_whose_worker_is_killed_is_not_retried_on_another() -> Result<()> {
    use sqlx::Connection;
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("CREATE TABLE maint (n int)").await?;
        let mut w1 = worker(&pg, "w1", &["--mode", "read-write"]).await?;
        let mut w2 = worker(&pg, "w2", &["--mode", "read-write"]).await?;
        let (_g, client) = gateway(&[&w1, &w2], &["--toolsets", "all"]).await?;
        let client = std::sync::Arc::new(client);
        warm_up(&client, &["w1", "w2"]).await?;

        // A transaction holding the table keeps the VACUUM waiting.
        let mut holder = sqlx::PgConnection::connect(&pg.url("app")).await?;
        sqlx::raw_sql("BEGIN; LOCK TABLE maint IN ACCESS EXCLUSIVE MODE")
            .execute(&mut holder)
            .await?;
        let vacuum = {
            let client = client.clone();
            tokio::spawn(async move {
                mcp::call_tool(
                    &client,
                    "vacuum_table",
                    json!({"table": "maint", "database": "app", "timeout_ms": 60000}),
                )
                .await
            })
        };
        let until = Instant::now() + Duration::from_secs(10);
        let ran_on = loop {
            if let Some(w) = waiting_for_a_lock(&pg).await?.into_iter().next() {
                break w;
            }
            if Instant::now() > until {
                bail!("no worker waited for the table's lock within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let other = kill_the_one(&ran_on, &mut w1, &mut w2, "VACUUM").await?;

        // Retried, it would wait for the lock on the other worker until
        // its 60 s timeout; not retried, it fails at once.
        let res = tokio::time::timeout(Duration::from_secs(20), vacuum)
            .await
            .context("the VACUUM did not end within 20 s of its worker's death")???;
        let msg = text(&res);
        assert!(is_error(&res), "the VACUUM succeeded: {msg}");
        assert_eq!(structured(&res)["error"]["retry_safe"], false, "{msg}");
        assert!(msg.contains("may or may not have been applied"), "{msg}");
        let waiting = waiting_for_a_lock(&pg).await?;
        assert!(
            !waiting.iter().any(|w| w == other),
            "the VACUUM was sent to {other} too"
        );
        sqlx::raw_sql("ROLLBACK").execute(&mut holder).await?;
        Ok(())
    })
    .await
}

/// Worker names of the backends waiting for a lock.
async fn waiting_for_a_lock(pg: &Pg) -> Result<Vec<String>> {
    Ok(pg
        .column(
            "app",
            "SELECT application_name FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND application_name IN ('w1', 'w2')",
        )
        .await?
        .into_iter()
        .flatten()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_refused_by_a_worker_at_its_limit_is_answered_by_another() -> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("").await?;
        let w1 = worker(&pg, "w1", &["--max-concurrent-calls", "1"]).await?;
        let w2 = worker(&pg, "w2", &[]).await?;
        let (g, client) = gateway(&[&w1, &w2], &[]).await?;
        warm_up(&client, &["w1", "w2"]).await?;

        // w1's one slot is taken by a slow call made to it directly.
        let mut direct = WorkerClient::connect(w1.url()).await?;
        let hold = tokio::spawn(async move {
            pgmcp_tests::worker::query(
                &mut direct,
                pgmcp_tests::worker::sql("SELECT pg_sleep(10) AS hold_the_slot"),
            )
            .await
        });
        let holder = running(&pg, "hold_the_slot", Duration::from_secs(10)).await?;
        assert_eq!(holder, "w1");

        // About half of these go to w1 first, which refuses them as
        // overloaded; w2 answers them all.
        for i in 0..20 {
            if hold.is_finished() {
                bail!("the slow call ended before call {i}: {:?}", hold.await?);
            }
            match who(&client).await? {
                Ok(w) => assert_eq!(w, "w2", "call {i} reached the overloaded worker"),
                Err(e) => bail!("call {i} failed: {e}"),
            }
        }
        let retried = g
            .logs()
            .iter()
            .filter(|l| l.contains("worker overloaded; trying another"))
            .count();
        assert!(
            retried >= 1,
            "no call went to the overloaded worker first; the gateway logged:\n{}",
            g.logs().join("\n")
        );
        if let Err(e) = hold.await? {
            bail!("the call holding w1's slot failed: {e:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_on_its_address_rejoins_the_rotation() -> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("").await?;
        let mut w1 = worker(&pg, "w1", &[]).await?;
        let w2 = worker(&pg, "w2", &[]).await?;
        let (_g, client) = gateway(&[&w1, &w2], &[]).await?;
        warm_up(&client, &["w1", "w2"]).await?;

        let addr = w1.addr.to_string();
        w1.kill().await?;
        for i in 0..10 {
            match who(&client).await? {
                Ok(w) => assert_eq!(w, "w2", "call {i} after the kill"),
                Err(e) => bail!("call {i} after the kill failed: {e}"),
            }
        }

        // Same address, new process (the port was just freed: retry a
        // bind that loses a race).
        let mut again = None;
        let mut last = None;
        for _ in 0..5 {
            match worker_on(&pg, &addr, "w1-again", &[]).await {
                Ok(w) => {
                    again = Some(w);
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let Some(_again) = again else {
            bail!("could not restart the worker on {addr}: {last:?}");
        };
        let restarted = Instant::now();

        // Back in the rotation within a few seconds (the gateway watches
        // again at most 1 s apart).
        let mut calls = 0;
        loop {
            calls += 1;
            match who(&client).await? {
                Ok(w) if w == "w1-again" => break,
                Ok(_) => {}
                Err(e) => bail!("call {calls} after the restart failed: {e}"),
            }
            if restarted.elapsed() > Duration::from_secs(8) || calls >= 400 {
                bail!(
                    "the restarted worker got no call within {:?} ({calls} calls)",
                    restarted.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // And keeps getting its share.
        let mut on_it = 0;
        for i in 0..20 {
            match who(&client).await? {
                Ok(w) if w == "w1-again" => on_it += 1,
                Ok(w) => assert_eq!(w, "w2", "call {i}"),
                Err(e) => bail!("call {i} failed: {e}"),
            }
        }
        assert!(on_it >= 1, "the restarted worker got none of 20 calls");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_a_call_in_flight_finishes_it_and_exits_within_its_grace_period()
-> Result<()> {
    bounded(TEST_TIMEOUT, async {
        let pg = app_cluster("").await?;
        let mut w1 = worker(&pg, "w1", &[]).await?;
        let mut w2 = worker(&pg, "w2", &[]).await?;
        let (_g, client) = gateway(&[&w1, &w2], &[]).await?;
        let client = std::sync::Arc::new(client);
        warm_up(&client, &["w1", "w2"]).await?;

        let slow = {
            let client = client.clone();
            tokio::spawn(async move {
                mcp::call_tool(
                    &client,
                    "query",
                    json!({
                        "sql": "SELECT current_setting('application_name') AS slow_in_flight \
                                FROM pg_sleep(2)",
                        "database": "app",
                    }),
                )
                .await
            })
        };
        let ran_on = running(&pg, "slow_in_flight", Duration::from_secs(10)).await?;
        let (draining, other) = match ran_on.as_str() {
            "w1" => (&mut w1, "w2"),
            "w2" => (&mut w2, "w1"),
            name => bail!("the call ran on an unknown worker `{name}`"),
        };

        // SIGTERM, and calls while the worker drains (at most 100, 3 s).
        let sigterm = Instant::now();
        let stopping = async {
            let status = draining.stop().await;
            (status, sigterm.elapsed())
        };
        let calling = async {
            let mut calls = Vec::new();
            while sigterm.elapsed() < Duration::from_secs(3) && calls.len() < 100 {
                let started = sigterm.elapsed();
                calls.push((started, who(&client).await));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            calls
        };
        let ((status, took), calls) = tokio::join!(stopping, calling);
        let status = status?;
        assert!(status.success(), "{ran_on} exited with {status}");
        assert!(
            took < GRACE,
            "{ran_on} took {took:?} to exit, more than its grace period"
        );

        let res = slow.await??;
        assert!(!is_error(&res), "the call in flight failed: {}", text(&res));
        assert_eq!(structured(&res)["rows"][0][0], ran_on.as_str());

        assert!(
            calls.len() >= 5,
            "only {} calls while draining",
            calls.len()
        );
        for (started, res) in calls {
            match res? {
                Ok(w) => {
                    // Within the drain delay the worker may still take
                    // calls; after it (with slack), only the other one.
                    if started >= DRAIN_DELAY * 2 {
                        assert_eq!(w, other, "a call {started:?} after SIGTERM");
                    }
                }
                Err(e) => bail!("a call {started:?} after SIGTERM failed: {e}"),
            }
        }
        Ok(())
    })
    .await
}

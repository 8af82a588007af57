//! Read-only that holds: a battery of bypass attempts against a read-only
//! target served by a role that OWNS its tables (so only read-only
//! enforcement stands in the way), through every tool that reaches it.
//! After each attempt the data, catalog, sequences, large objects and
//! advisory locks must be exactly as before; afterwards every pooled
//! connection must still run read-only with no state left behind.

use std::time::{Duration, Instant};

use pgmcp_tests::Pg;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::worker::InProcessWorker;
use serde_json::{Value, json};

const SETUP: &str = r#"
CREATE ROLE owner LOGIN;
ALTER DATABASE app OWNER TO owner;
ALTER SCHEMA public OWNER TO owner;
SET ROLE owner;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
CREATE SEQUENCE s;
CREATE VIEW tv AS SELECT * FROM t;
CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t;
CREATE FUNCTION writer() RETURNS SETOF t LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO t VALUES (100, 'x'); RETURN QUERY SELECT * FROM t; END $$;
CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS $$ UPDATE t SET v = 'pwned' RETURNING 1 $$;
CREATE PROCEDURE wproc() LANGUAGE sql AS $$ DELETE FROM t $$;
CREATE PROCEDURE committer() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; COMMIT; END $$;
SELECT lo_from_bytea(4242, 'hello');
RESET ROLE;
"#;

/// Everything an attempt might change, in one string.
const FINGERPRINT: &str = r#"
SELECT concat_ws(' | ',
  (SELECT md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t),
  (SELECT md5(string_agg(c.relname::text || c.relkind::text || c.relnatts || coalesce(c.relacl::text, ''), ',' ORDER BY c.relname))
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
  (SELECT md5(string_agg(p.proname::text || p.prosrc, ',' ORDER BY p.proname)) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace),
  (SELECT count(*) FROM pg_description),
  (SELECT count(*) FROM pg_extension),
  (SELECT last_value || ':' || is_called FROM s),
  (SELECT n FROM mv),
  (SELECT md5(string_agg(m.oid || ':' || encode(lo_get(m.oid), 'hex'), ',' ORDER BY m.oid)) FROM pg_largeobject_metadata m),
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'),
  (SELECT count(*) FROM pg_roles),
  (SELECT datconnlimit FROM pg_database WHERE datname = 'app'))
"#;

async fn fingerprint(pg: &Pg) -> anyhow::Result<String> {
    Ok(pg
        .column("app", FINGERPRINT)
        .await?
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_default())
}

/// The attempts: (tool, arguments).
fn attempts() -> Vec<(&'static str, Value)> {
    let q = |sql: &str| ("query", json!({"sql": sql}));
    vec![
        q("INSERT INTO t VALUES (11, 'x')"),
        q("UPDATE t SET v = 'x'"),
        q("DELETE FROM t"),
        q("TRUNCATE t"),
        q("DROP TABLE t"),
        q("ALTER TABLE t ADD COLUMN w int"),
        q("CREATE TABLE x (a int)"),
        q("CREATE INDEX ON t (v)"),
        q("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d"),
        q("WITH u AS (UPDATE t SET v = 'x' RETURNING 1) SELECT 1"),
        q("SELECT nextval('s')"),
        q("SELECT setval('s', 100)"),
        q("SELECT * FROM writer()"),
        q("SELECT sneaky()"),
        q("CALL wproc()"),
        q("CALL committer()"),
        q("DO $$ BEGIN DELETE FROM t; END $$"),
        q("DO $$ BEGIN COMMIT; DELETE FROM t; END $$"),
        q("COMMIT; DELETE FROM t"),
        q("SELECT 1; DELETE FROM t"),
        q("/* harmless */ DELETE FROM t"),
        q("END"),
        q(r#"INSERT INTO U&"\0074" VALUES (12, 'unicode')"#),
        q(r#"DELETE FROM "public"."t""#),
        q("INSERT INTO tv VALUES (13, 'through a view')"),
        q("MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE"),
        q("SET TRANSACTION READ WRITE"),
        q("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
        q("SELECT set_config('default_transaction_read_only', 'off', false)"),
        q("SET default_transaction_read_only = off"),
        q("SELECT lo_create(0)"),
        q("SELECT lo_unlink(4242)"),
        q("SELECT lo_put(4242, 0, 'HELLO')"),
        q("SELECT pg_advisory_lock(42)"),
        q("SELECT pg_advisory_lock_shared(43), pg_try_advisory_lock(44)"),
        q("PREPARE evil AS DELETE FROM t"),
        q("LISTEN channel"),
        q("SELECT pg_notify('channel', 'x')"),
        q("CREATE TEMP TABLE tt AS SELECT * FROM t"),
        q("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t"),
        q("VACUUM t"),
        q("ANALYZE t"),
        q("REINDEX TABLE t"),
        q("CLUSTER t USING t_pkey"),
        q("REFRESH MATERIALIZED VIEW mv"),
        q("GRANT ALL ON t TO PUBLIC"),
        q("COMMENT ON TABLE t IS 'changed'"),
        q("ALTER SEQUENCE s RESTART WITH 50"),
        q("CREATE EXTENSION IF NOT EXISTS pgcrypto"),
        q("ALTER DATABASE app CONNECTION LIMIT 1"),
        q("COPY t FROM STDIN"),
        q("SECURITY LABEL ON TABLE t IS 'x'"),
        q("CREATE ROLE intruder"),
        (
            "batch_query",
            json!({"queries": [{"sql": "DELETE FROM t"}, {"sql": "SELECT nextval('s')"}, {"sql": "SELECT pg_advisory_lock(7)"}]}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "SET default_transaction_read_only = off"}, {"sql": "COMMIT"}, {"sql": "DELETE FROM t"}]}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"}, {"sql": "DO $$ BEGIN COMMIT; END $$"}, {"sql": "DELETE FROM t"}]}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "SET TRANSACTION READ WRITE"}, {"sql": "DELETE FROM t"}]}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "SELECT pg_advisory_lock(9)"}, {"sql": "PREPARE p2 AS SELECT 1"}, {"sql": "CREATE TEMP TABLE t2 (a int)"}]}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "SELECT 1"}, {"sql": "CALL committer()"}]}),
        ),
        ("explain", json!({"sql": "DELETE FROM t", "analyze": true})),
        (
            "explain",
            json!({"sql": "SELECT * FROM writer()", "analyze": true}),
        ),
        (
            "explain",
            json!({"sql": "INSERT INTO t VALUES (14, 'x')", "analyze": true, "buffers": true}),
        ),
        ("execute", json!({"sql": "DELETE FROM t"})),
        (
            "bulk_insert",
            json!({"table": "t", "columns": ["id", "v"], "rows": [[15, "x"]]}),
        ),
    ]
}

#[tokio::test]
async fn read_only_holds_against_the_bypass_battery() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    pg.create_db("app").await?;
    pg.exec_as_superuser("app", SETUP).await?;
    let url = pg.role_url("owner", "app");
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--pool-max-connections",
        "3",
        "--pool-min-connections",
        "3",
    ])
    .await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;

    let before = fingerprint(&pg).await?;
    let battery = attempts();
    assert!(battery.len() >= 40, "only {} attempts", battery.len());
    let mut failures = 0;
    for (i, (tool, args)) in battery.iter().enumerate() {
        let res = mcp::call_tool(&client, tool, args.clone()).await?;
        // The call may fail, or succeed harmlessly (everything runs in a
        // read-only transaction that is rolled back); a batch reports its
        // failures per query.
        if *tool == "batch_query" {
            assert_eq!(
                structured(&res)["failed"],
                2,
                "{tool} {args}: {}",
                text(&res)
            );
        }
        if is_error(&res) {
            failures += 1;
        }
        // The state is exactly as before. Advisory locks are released as the
        // call's transaction ends, which a read may finish just after its
        // answer: give that a moment, nothing else.
        let mut after = fingerprint(&pg).await?;
        let settle = Instant::now() + Duration::from_secs(2);
        while after != before && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(10)).await;
            after = fingerprint(&pg).await?;
        }
        assert_eq!(
            after,
            before,
            "attempt {i} ({tool} {args}) changed something: {}",
            text(&res)
        );
    }

    // Nearly every attempt is refused outright.
    assert!(
        failures >= battery.len() - 16,
        "only {failures} of {} attempts failed",
        battery.len()
    );

    // Every pooled connection still runs read-only, as the owner, with no
    // state left behind: occupy all three at once.
    let probe = "SELECT current_setting('transaction_read_only'), current_setting('default_transaction_read_only'), \
                 current_user::text, (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
                 (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
                 (SELECT count(*) FROM pg_listening_channels()), (SELECT count(*) FROM pg_cursors WHERE name <> ''), \
                 pg_backend_pid(), pg_sleep(0.3)::text";
    let calls = (0..3).map(|_| mcp::call_tool(&client, "query", json!({"sql": probe})));
    let results = futures::future::join_all(calls).await;
    let mut pids = Vec::new();
    for res in results {
        let res = res?;
        assert!(!is_error(&res), "{}", text(&res));
        let row = structured(&res)["rows"][0].clone();
        assert_eq!(row[0], "on", "{row}");
        assert_eq!(row[1], "on", "{row}");
        assert_eq!(row[2], "owner", "{row}");
        assert_eq!(
            &row.as_array().map(|r| r[3..7].to_vec()).unwrap_or_default(),
            &[json!(0), json!(0), json!(0), json!(0)],
            "{row}"
        );
        pids.push(row[7].clone());
    }
    pids.sort_by_key(|p| p.as_i64());
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "the probes did not use three connections: {pids:?}"
    );
    Ok(())
}

/// Sends `calls` tool calls (name, arguments) from clients that each give
/// up after 300 ms, dropping their HTTP request, and waits until all have.
async fn call_and_leave(
    mcp_url: &str,
    calls: Vec<(&'static str, serde_json::Value)>,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for (tool, args) in calls {
        let url = mcp_url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = mcp::http_client(&url).await?;
            let call = mcp::call_tool(&client, tool, args);
            let _ = tokio::time::timeout(Duration::from_millis(300), call).await;
            drop(client);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Within one second of the last client leaving, no statement matching
/// `like` is running and the database has no more client backends than the
/// worker's pool and side connection (plus the one asking).
async fn nothing_left_running(pg: &Pg, like: &str, pool_max: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let check = format!(
        "SELECT count(*) FILTER (WHERE query LIKE '{like}' AND state = 'active')::text \
         FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend' \
         AND pid <> pg_backend_pid()"
    );
    loop {
        let active = pg.column("app", &check).await?;
        if active == vec![Some("0".to_string())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "`{like}` still running 1 s after the clients left: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Terminated and cancelled connections are closed, not leaked: the
    // worker holds at most its pool and its side connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let backends = pg
            .column(
                "app",
                "SELECT count(*)::text FROM pg_stat_activity \
                 WHERE datname = 'app' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .await?;
        let n: usize = backends
            .first()
            .cloned()
            .flatten()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        if n <= pool_max + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} backends after the clients left; the pool holds at most {pool_max} (+1 side connection)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Ten calls at once succeed: the pool is healthy.
async fn pool_serves(mcp_url: &str) -> anyhow::Result<()> {
    let client = mcp::http_client(mcp_url).await?;
    let calls = (0..10).map(|i| {
        mcp::call_tool(
            &client,
            "query",
            json!({"sql": "SELECT $1::int", "params": [i]}),
        )
    });
    for res in futures::future::join_all(calls).await {
        let res = res?;
        assert!(!is_error(&res), "{}", text(&res));
    }
    Ok(())
}

#[tokio::test]
async fn disconnected_clients_leave_nothing_running() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    // Room for every call: they wait for the pool rather than being refused.
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--pool-max-connections",
        "10",
        "--max-concurrent-calls",
        "200",
    ])
    .await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let mcp_url = gateway.mcp_url();

    // 100 long queries whose clients go away mid-call.
    let calls = (0..100)
        .map(|_| {
            (
                "query",
                json!({"sql": "SELECT pg_sleep(60)", "timeout_ms": 120000}),
            )
        })
        .collect();
    call_and_leave(&mcp_url, calls).await?;
    nothing_left_running(&pg, "SELECT pg_sleep(60)%", 10).await?;
    pool_serves(&mcp_url).await
}

#[tokio::test]
async fn disconnected_clients_stop_writes_plans_and_transactions_too() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec("app", "CREATE TABLE counter (id int PRIMARY KEY, v int NOT NULL); INSERT INTO counter VALUES (1, 0)")
        .await?;
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--mode",
        "read-write",
        "--pool-max-connections",
        "4",
        "--max-concurrent-calls",
        "64",
    ])
    .await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let mcp_url = gateway.mcp_url();

    // Unary calls (not streamed): each holds a statement that would run a
    // minute, and the client leaves after 300 ms.
    let slow_write =
        "UPDATE counter SET v = v + 1 WHERE id = 1 AND (SELECT true FROM pg_sleep(60))";
    let mut calls = Vec::new();
    for _ in 0..4 {
        calls.push(("execute", json!({"sql": slow_write, "timeout_ms": 120000})));
        calls.push((
            "transaction",
            json!({"statements": [
                {"sql": "UPDATE counter SET v = v + 100 WHERE id = 1"},
                {"sql": "SELECT pg_sleep(60)"}
            ], "timeout_ms": 120000}),
        ));
        calls.push((
            "explain",
            json!({"sql": "SELECT pg_sleep(60)", "analyze": true, "timeout_ms": 120000}),
        ));
    }
    call_and_leave(&mcp_url, calls).await?;
    nothing_left_running(&pg, "%pg_sleep(60)%", 4).await?;
    // Nothing of the abandoned writes was committed.
    assert_eq!(
        pg.column("app", "SELECT v::text FROM counter WHERE id = 1")
            .await?,
        vec![Some("0".to_string())]
    );
    pool_serves(&mcp_url).await
}

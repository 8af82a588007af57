//! The `dba` toolset end to end: `--toolsets` filtering, `database_health`,
//! `top_queries` with and without pg_stat_statements, `analyze_table` and
//! `vacuum_table` on read-write and read-only targets.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgmcp_tests::Pg;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, Client, assert_valid_output, is_error, structured, text};
use pgmcp_tests::worker::InProcessWorker;
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

const DBA_TOOLS: [&str; 5] = [
    "database_health",
    "top_queries",
    "analyze_table",
    "vacuum_table",
    "invalidate_schema_cache",
];

/// A cluster, one worker serving `targets` (`NAME=database` pairs, plus
/// extra worker flags) and a gateway with `--toolsets all`.
struct Dba {
    client: Client,
    tools: Vec<Tool>,
    _gateway: InProcessGateway,
    _worker: InProcessWorker,
    pg: Pg,
}

impl Dba {
    async fn start(pg: Pg, worker_flags: &[&str]) -> Result<Self> {
        let worker = InProcessWorker::start(worker_flags).await?;
        let gateway = InProcessGateway::start(&[worker.url()], &["--toolsets", "all"]).await?;
        let client = mcp::http_client(&gateway.mcp_url()).await?;
        let tools = client.list_all_tools().await?;
        Ok(Dba {
            client,
            tools,
            _gateway: gateway,
            _worker: worker,
            pg,
        })
    }

    /// Calls `name`; checks the structuredContent against its outputSchema.
    async fn call(&self, name: &str, args: Value) -> Result<CallToolResult> {
        let res = mcp::call_tool(&self.client, name, args).await?;
        let tool = self
            .tools
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("tool {name} not listed"))?;
        assert_valid_output(tool, &res)?;
        Ok(res)
    }

    async fn ok(&self, name: &str, args: Value) -> Result<Value> {
        let res = self.call(name, args).await?;
        if is_error(&res) {
            bail!("{name} failed: {}", text(&res));
        }
        Ok(structured(&res))
    }
}

/// Serialized `tools/list` result with the default `--toolsets core`, in
/// bytes (19 323 measured when set; 47 417 before output schemas were
/// compacted).
const DEFAULT_TOOL_LIST_BUDGET: usize = 20_000;
/// The same with `--toolsets all` (26 452 measured; 64 215 before).
const ALL_TOOL_LIST_BUDGET: usize = 28_000;

#[tokio::test]
async fn toolsets_decide_which_tools_are_listed_and_callable() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let worker = InProcessWorker::start(&["--database-url", &url]).await?;

    let default = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&default.mcp_url()).await?;
    let listed = client.list_tools(None).await?;
    let names: Vec<&str> = listed.tools.iter().map(|t| t.name.as_ref()).collect();
    for t in DBA_TOOLS {
        assert!(!names.contains(&t), "{t} listed by default: {names:?}");
    }
    for t in ["query", "list_databases", "fleet_status"] {
        assert!(names.contains(&t), "{t} missing: {names:?}");
    }
    // Every client puts the tool list in front of the model: it has a budget.
    let bytes = serde_json::to_vec(&listed)?.len();
    eprintln!(
        "default tools/list result: {bytes} bytes ({} tools)",
        names.len()
    );
    assert!(
        bytes <= DEFAULT_TOOL_LIST_BUDGET,
        "the default tools/list result is {bytes} bytes, over its budget of {DEFAULT_TOOL_LIST_BUDGET}: \
         shorten descriptions or schemas (gateway/src/tools/mod.rs `compact`)"
    );
    let err = mcp::call_tool(&client, "database_health", json!({}))
        .await
        .err()
        .context("a disabled tool must not be callable")?;
    let msg = err.to_string();
    assert!(
        msg.contains("`dba` toolset") && msg.contains("--toolsets core,dba"),
        "{msg}"
    );
    let err = mcp::call_tool(&client, "no_such_tool", json!({}))
        .await
        .err()
        .context("an unknown tool must fail")?;
    assert!(!err.to_string().contains("toolset"), "{err}");

    let all = InProcessGateway::start(&[worker.url()], &["--toolsets", "core,dba"]).await?;
    let client = mcp::http_client(&all.mcp_url()).await?;
    let listed = client.list_tools(None).await?;
    let all_bytes = serde_json::to_vec(&listed)?.len();
    eprintln!(
        "tools/list with --toolsets all: {all_bytes} bytes ({} tools)",
        listed.tools.len()
    );
    assert!(all_bytes > bytes);
    assert!(
        all_bytes <= ALL_TOOL_LIST_BUDGET,
        "tools/list with every toolset is {all_bytes} bytes, over its budget of {ALL_TOOL_LIST_BUDGET}"
    );
    for name in DBA_TOOLS {
        let t = listed
            .tools
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("{name} not listed with --toolsets core,dba"))?;
        let ann = t.annotations.clone().context("annotations")?;
        assert_eq!(ann.open_world_hint, Some(false), "{name}");
        assert_eq!(ann.destructive_hint, Some(false), "{name}");
        assert!(ann.read_only_hint.is_some() && ann.idempotent_hint.is_some());
        let schema = t.output_schema.clone().context("outputSchema")?;
        assert_eq!(schema.get("type"), Some(&json!("object")), "{name}");
    }

    let only_dba = InProcessGateway::start(&[worker.url()], &["--toolsets", "dba"]).await?;
    let client = mcp::http_client(&only_dba.mcp_url()).await?;
    let names: Vec<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names.len(), DBA_TOOLS.len(), "{names:?}");

    let bad = InProcessGateway::start(&[worker.url()], &["--toolsets", "core,admin"]).await;
    let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("unknown toolset `admin`"), "{msg}");
    Ok(())
}

/// Tables with deliberate index and storage problems.
const PROBLEMS: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, customer int, status text, pad text);
INSERT INTO orders SELECT g, g % 100, 'new', repeat('x', 20) FROM generate_series(1, 2000) g;
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_customer_again ON orders (customer);
CREATE INDEX orders_customer_status ON orders (customer, status);
CREATE TABLE events (id int, kind text);
INSERT INTO events VALUES (1, 'a'), (1, 'b');
CREATE TABLE churn (id int PRIMARY KEY, pad text);
INSERT INTO churn SELECT g, repeat('y', 100) FROM generate_series(1, 50000) g;
DELETE FROM churn WHERE id % 10 <> 0;
ANALYZE churn;
CREATE SEQUENCE small_ids AS smallint;
SELECT setval('small_ids', 32000);
CREATE TABLE stale (id int, pad text);
ALTER TABLE stale SET (autovacuum_enabled = off);
INSERT INTO stale SELECT g, 'z' FROM generate_series(1, 10000) g;
DELETE FROM stale WHERE id > 4000;
"#;

/// Reads: each scan of `churn` requests its 800-odd pages from shared
/// buffers.
const READS: &str = "SELECT count(*) FROM churn WHERE pad <> ''; SELECT count(*) FROM churn WHERE pad <> ''; \
                     SELECT count(*) FROM churn WHERE pad <> ''; SELECT count(*) FROM churn WHERE pad <> ''; \
                     SELECT count(*) FROM churn WHERE pad <> ''; SELECT count(*) FROM orders";

/// The first column of the first row of `sql` in `app` (as the superuser),
/// as a number.
async fn number(pg: &Pg, sql: &str) -> Result<f64> {
    let col = pg.column("app", sql).await?;
    let v = col
        .first()
        .cloned()
        .flatten()
        .with_context(|| format!("no value from {sql}"))?;
    v.parse::<f64>()
        .with_context(|| format!("{sql} returned {v:?}"))
}

/// Polls `sql` (see [`number`]) until it returns at least `min`, for up to
/// `within`; returns the last value.
async fn wait_for_at_least(pg: &Pg, sql: &str, min: f64, within: Duration) -> Result<f64> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = number(pg, sql).await?;
        if n >= min {
            return Ok(n);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{sql} still returns {n} after {within:?}, not {min} or more");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The check `name` of a `database_health` result.
fn health_check(s: &Value, name: &str) -> Result<Value> {
    s["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .with_context(|| format!("no check {name} in {s}"))
}

/// The entry of a check's `list` whose `key` is `value`.
fn entry<'a>(list: &'a Value, key: &str, value: &Value) -> Result<&'a Value> {
    list.as_array()
        .and_then(|l| l.iter().find(|e| &e[key] == value))
        .with_context(|| format!("no entry with {key} = {value} in {list}"))
}

/// Every check finds the condition the test creates: index, lock, bloat,
/// vacuum/analyze and sequence problems, an idle-in-transaction session,
/// and the server's own cache and transaction-id figures.
#[tokio::test]
async fn database_health_finds_index_lock_bloat_and_sequence_problems() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec("app", PROBLEMS).await?;
    // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind.
    let failed = pg
        .exec(
            "app",
            "CREATE UNIQUE INDEX CONCURRENTLY events_id ON events (id)",
        )
        .await;
    assert!(failed.is_err(), "the duplicate ids must fail the index");
    pg.exec("app", READS).await?;
    // Sessions publish their statistics when they end (or idle a while):
    // wait for the setup's to show.
    wait_for_at_least(
        &pg,
        "SELECT n_dead_tup::text FROM pg_stat_user_tables WHERE relname = 'stale'",
        6000.0,
        Duration::from_secs(30),
    )
    .await?;
    wait_for_at_least(
        &pg,
        "SELECT (blks_hit + blks_read)::text FROM pg_stat_database WHERE datname = 'app'",
        10_000.0,
        Duration::from_secs(30),
    )
    .await?;

    // One session holds a row lock, another waits for it.
    let mut holder = PgConnection::connect(&url).await?;
    holder
        .execute("BEGIN; UPDATE orders SET status = 'held' WHERE id = 1")
        .await?;
    let waiter_url = url.clone();
    let waiter = tokio::spawn(async move {
        let mut c = PgConnection::connect(&waiter_url).await?;
        c.execute("UPDATE orders SET status = 'waiting' WHERE id = 1")
            .await?;
        anyhow::Ok(())
    });
    let mut blocked = false;
    for _ in 0..100 {
        let n = pg
            .column(
                "app",
                "SELECT count(*)::text FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0",
            )
            .await?;
        if n.first().cloned().flatten().as_deref() == Some("1") {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(blocked, "the second UPDATE never waited");

    let dba = Dba::start(pg, &["--database-url", &url]).await?;
    const HIT: &str = "SELECT blks_hit::text FROM pg_stat_database WHERE datname = 'app'";
    const READ: &str = "SELECT blks_read::text FROM pg_stat_database WHERE datname = 'app'";
    const XID_AGE: &str = "SELECT age(datfrozenxid)::text FROM pg_database WHERE datname = 'app'";
    const MXID_AGE: &str =
        "SELECT mxid_age(datminmxid)::text FROM pg_database WHERE datname = 'app'";
    let hit_before = number(&dba.pg, HIT).await?;
    let read_before = number(&dba.pg, READ).await?;
    let xid_age_before = number(&dba.pg, XID_AGE).await?;
    let mxid_age_before = number(&dba.pg, MXID_AGE).await?;
    let res = dba.call("database_health", json!({})).await?;
    let hit_after = number(&dba.pg, HIT).await?;
    let read_after = number(&dba.pg, READ).await?;
    let xid_age_after = number(&dba.pg, XID_AGE).await?;
    let mxid_age_after = number(&dba.pg, MXID_AGE).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    let check = |name: &str| health_check(&s, name);
    let names: Vec<&str> = s["checks"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "cache_hit_ratio",
            "connections",
            "long_running_queries",
            "blocking_locks",
            "invalid_indexes",
            "unused_indexes",
            "duplicate_indexes",
            "table_bloat",
            "vacuum_staleness",
            "analyze_staleness",
            "transaction_id_wraparound",
            "sequences",
        ]
    );
    for c in s["checks"].as_array().context("checks")? {
        assert!(
            c["summary"]
                .as_str()
                .is_some_and(|t| !t.is_empty() && !t.contains('\n')),
            "{c}"
        );
        assert_ne!(c["status"], "unknown", "{c}");
    }

    let invalid = check("invalid_indexes")?;
    assert_eq!(invalid["status"], "warning", "{invalid}");
    assert_eq!(invalid["details"][0]["index"], "events_id", "{invalid}");

    let unused = check("unused_indexes")?;
    assert_eq!(unused["status"], "warning");
    let unused_names = unused["details"]["indexes"].to_string();
    assert!(unused_names.contains("\"orders_customer\""), "{unused}");
    assert!(
        !unused_names.contains("orders_pkey"),
        "unique indexes enforce constraints: {unused}"
    );

    let dup = check("duplicate_indexes")?;
    assert_eq!(dup["status"], "warning");
    let found: Vec<(String, String, String)> = dup["details"]
        .as_array()
        .context("duplicate list")?
        .iter()
        .map(|d| {
            (
                d["index"].as_str().unwrap_or_default().to_string(),
                d["covered_by"].as_str().unwrap_or_default().to_string(),
                d["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&(
            "orders_customer_again".into(),
            "orders_customer".into(),
            "identical".into()
        )),
        "{dup}"
    );
    assert!(
        found.iter().any(|(i, by, k)| i == "orders_customer"
            && by == "orders_customer_status"
            && k == "prefix"),
        "{dup}"
    );
    assert!(
        !found.iter().any(|(i, _, _)| i == "orders_customer_status"),
        "the widest index is not redundant: {dup}"
    );

    let locks = check("blocking_locks")?;
    assert_eq!(locks["status"], "warning", "{locks}");
    assert!(
        locks["details"][0]["query"]
            .as_str()
            .is_some_and(|q| q.contains("'waiting'")),
        "{locks}"
    );
    assert!(
        locks["details"][0]["blocked_by"][0]["query"]
            .as_str()
            .is_some_and(|q| q.contains("'held'")),
        "{locks}"
    );

    let bloat = check("table_bloat")?;
    assert_eq!(bloat["status"], "warning", "{bloat}");
    assert_eq!(bloat["details"]["tables"][0]["table"], "churn", "{bloat}");

    let seq = check("sequences")?;
    assert_eq!(seq["status"], "critical", "{seq}");
    assert_eq!(seq["details"][0]["sequence"], "public.small_ids", "{seq}");

    // Connections: the lock holder sits idle in its transaction; the limit
    // is the server's.
    let conns = check("connections")?;
    assert_eq!(conns["status"], "ok", "{conns}");
    let max_connections = number(&dba.pg, "SHOW max_connections").await?;
    assert_eq!(
        conns["details"]["max_connections"].as_f64(),
        Some(max_connections),
        "{conns}"
    );
    let by_state = conns["details"]["by_state"]
        .as_object()
        .with_context(|| format!("by_state: {conns}"))?;
    let idle_in_tx = by_state
        .get("idle in transaction")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        idle_in_tx >= 1,
        "the lock holder is idle in transaction: {conns}"
    );
    assert!(
        by_state
            .get("active")
            .and_then(Value::as_u64)
            .is_some_and(|n| n >= 1),
        "the waiting UPDATE is active: {conns}"
    );
    let by_state_total: u64 = by_state.values().filter_map(Value::as_u64).sum();
    assert_eq!(
        conns["details"]["total"].as_u64(),
        Some(by_state_total),
        "{conns}"
    );
    let summary = conns["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains(&format!("max_connections {max_connections}"))
            && summary.contains(&format!("; {idle_in_tx} idle in transaction")),
        "{conns}"
    );

    // Nothing has run for a minute yet.
    let long = check("long_running_queries")?;
    assert_eq!(long["status"], "ok", "{long}");
    assert_eq!(long["details"], json!([]), "{long}");

    // `stale` (autovacuum off) lost 6000 of its 10000 rows and was never
    // analyzed.
    let vacuum = check("vacuum_staleness")?;
    assert_eq!(vacuum["status"], "warning", "{vacuum}");
    assert_eq!(vacuum["details"]["autovacuum"], "on", "{vacuum}");
    let stale = entry(&vacuum["details"]["tables"], "table", &json!("stale"))?;
    assert_eq!(stale["dead_tuples"], 6000, "{vacuum}");
    assert_eq!(stale["live_tuples"], 4000, "{vacuum}");
    // autovacuum_vacuum_threshold 50 + autovacuum_vacuum_scale_factor 0.2 × 4000
    assert_eq!(stale["autovacuum_threshold"], 850, "{vacuum}");
    assert!(stale["last_vacuum"].is_null(), "{vacuum}");
    assert!(
        vacuum["summary"]
            .as_str()
            .is_some_and(|t| t.contains("stale") && t.contains("VACUUM")),
        "{vacuum}"
    );
    let analyze = check("analyze_staleness")?;
    assert_eq!(analyze["status"], "warning", "{analyze}");
    let stale = entry(&analyze["details"]["tables"], "table", &json!("stale"))?;
    assert_eq!(stale["modified_since_analyze"], 16000, "{analyze}");
    assert_eq!(stale["live_tuples"], 4000, "{analyze}");
    // autovacuum_analyze_threshold 50 + autovacuum_analyze_scale_factor 0.1 × 4000
    assert_eq!(stale["autoanalyze_threshold"], 450, "{analyze}");
    assert!(stale["last_analyze"].is_null(), "{analyze}");
    assert!(
        analyze["summary"]
            .as_str()
            .is_some_and(|t| t.contains("stale") && t.contains("ANALYZE")),
        "{analyze}"
    );

    // The cache hit ratio is the database's, as pg_stat_database counted it
    // between just before and just after the call.
    let cache = check("cache_hit_ratio")?;
    let hit = cache["details"]["blocks_hit"]
        .as_f64()
        .with_context(|| format!("blocks_hit: {cache}"))?;
    let read = cache["details"]["blocks_read"]
        .as_f64()
        .with_context(|| format!("blocks_read: {cache}"))?;
    assert!(
        (hit_before..=hit_after).contains(&hit) && (read_before..=read_after).contains(&read),
        "hits {hit_before}..{hit_after}, reads {read_before}..{read_after}: {cache}"
    );
    assert!(hit + read >= 10_000.0, "{cache}");
    let ratio = hit / (hit + read);
    let percent: f64 = cache["summary"]
        .as_str()
        .and_then(|t| t.split_once("% of block requests served from shared buffers"))
        .and_then(|(p, _)| p.parse().ok())
        .with_context(|| format!("no percentage in {cache}"))?;
    assert!((0.0..=100.0).contains(&percent), "{cache}");
    assert!((percent - ratio * 100.0).abs() <= 0.006, "{ratio}: {cache}");
    let expected = if ratio < 0.90 {
        "critical"
    } else if ratio < 0.99 {
        "warning"
    } else {
        "ok"
    };
    assert_eq!(cache["status"], expected, "{cache}");

    // Wraparound: this database's age is age(datfrozenxid), give or take the
    // few transaction ids autovacuum may take meanwhile.
    let wrap = check("transaction_id_wraparound")?;
    assert_eq!(wrap["status"], "ok", "{wrap}");
    let app = entry(&wrap["details"]["databases"], "database", &json!("app"))?;
    let xid_age = app["xid_age"]
        .as_f64()
        .with_context(|| format!("xid_age: {wrap}"))?;
    assert!(
        xid_age >= xid_age_before.min(xid_age_after) - 10.0
            && xid_age <= xid_age_before.max(xid_age_after) + 10.0
            && xid_age > 0.0,
        "age(datfrozenxid) {xid_age_before} before, {xid_age_after} after: {wrap}"
    );
    let mxid_age = app["multixact_age"]
        .as_f64()
        .with_context(|| format!("multixact_age: {wrap}"))?;
    assert!(
        mxid_age >= mxid_age_before.min(mxid_age_after) - 10.0
            && mxid_age <= mxid_age_before.max(mxid_age_after) + 10.0,
        "mxid_age(datminmxid) {mxid_age_before} before, {mxid_age_after} after: {wrap}"
    );
    assert_eq!(
        wrap["details"]["wraparound_limit"].as_f64(),
        Some(2_147_483_648.0),
        "{wrap}"
    );
    let worst = wrap["details"]["databases"]
        .as_array()
        .context("databases")?
        .iter()
        .map(|d| {
            d["xid_age"]
                .as_f64()
                .unwrap_or(0.0)
                .max(d["multixact_age"].as_f64().unwrap_or(0.0))
        })
        .fold(0.0, f64::max);
    assert!(
        wrap["summary"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("oldest unfrozen transaction is {worst} "))),
        "{wrap}"
    );
    assert_eq!(s["status"], "critical");
    let t = text(&res);
    assert!(t.contains("[critical] sequences:"), "{t}");

    holder.execute("ROLLBACK").await?;
    waiter.await??;

    // The checks run read-only, on a read-write target too, and never
    // change anything.
    let count = dba
        .pg
        .column(
            "app",
            "SELECT count(*)::text FROM orders WHERE status = 'waiting'",
        )
        .await?;
    assert_eq!(count, vec![Some("1".to_string())]);
    Ok(())
}

/// `long_running_queries` reports statements active, and transactions idle,
/// for over a minute (a fixed threshold): this test takes a minute.
#[tokio::test]
async fn database_health_finds_statements_and_transactions_open_over_a_minute() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;

    // A statement that runs until cancelled, and a transaction left open.
    let mut sleeper = PgConnection::connect(&url).await?;
    let sleeper_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut sleeper)
        .await?;
    let sleeping = tokio::spawn(async move {
        let res = sleeper.execute("SELECT pg_sleep(600)").await;
        drop(sleeper);
        res
    });
    let mut idle = PgConnection::connect(&url).await?;
    let idle_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut idle)
        .await?;
    idle.execute("BEGIN; SELECT 1 AS left_open").await?;

    let dba = Dba::start(pg, &["--database-url", &url]).await?;

    // Before the minute is up, neither is reported.
    let s = dba.ok("database_health", json!({})).await?;
    let long = health_check(&s, "long_running_queries")?;
    assert_eq!(long["status"], "ok", "{long}");
    assert_eq!(long["details"], json!([]), "{long}");
    let conns = health_check(&s, "connections")?;
    assert!(
        conns["details"]["by_state"]["idle in transaction"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{conns}"
    );

    // Wait (on the server's clock) until both are over a minute old.
    let age = |pid: i32, since: &str| {
        format!(
            "SELECT coalesce(extract(epoch FROM clock_timestamp() - {since}), 0)::text \
             FROM pg_stat_activity WHERE pid = {pid}"
        )
    };
    let sleeper_age = age(sleeper_pid, "query_start");
    let idle_age = age(idle_pid, "state_change");
    wait_for_at_least(&dba.pg, &sleeper_age, 61.0, Duration::from_secs(120)).await?;
    wait_for_at_least(&dba.pg, &idle_age, 61.0, Duration::from_secs(120)).await?;

    let sleeper_before = number(&dba.pg, &sleeper_age).await?;
    let idle_before = number(&dba.pg, &idle_age).await?;
    let res = dba.call("database_health", json!({})).await?;
    let sleeper_after = number(&dba.pg, &sleeper_age).await?;
    let idle_after = number(&dba.pg, &idle_age).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);

    let long = health_check(&s, "long_running_queries")?;
    assert_eq!(long["status"], "warning", "{long}");
    let items = &long["details"];
    let running = entry(items, "pid", &json!(sleeper_pid))?;
    assert_eq!(running["state"], "active", "{long}");
    assert_eq!(running["role"], "app", "{long}");
    assert_eq!(running["database"], "app", "{long}");
    assert_eq!(running["query"], "SELECT pg_sleep(600)", "{long}");
    assert_eq!(running["wait_event"], "PgSleep", "{long}");
    let seconds = running["seconds"].as_f64().context("seconds")?;
    // Rounded to a tenth of a second.
    assert!(
        seconds >= 60.0 && seconds >= sleeper_before - 0.1 && seconds <= sleeper_after + 0.1,
        "running {sleeper_before}..{sleeper_after} s: {long}"
    );
    let open = entry(items, "pid", &json!(idle_pid))?;
    assert_eq!(open["state"], "idle in transaction", "{long}");
    assert_eq!(open["query"], "BEGIN; SELECT 1 AS left_open", "{long}");
    let seconds = open["seconds"].as_f64().context("seconds")?;
    assert!(
        seconds >= 60.0 && seconds >= idle_before - 0.1 && seconds <= idle_after + 0.1,
        "idle {idle_before}..{idle_after} s: {long}"
    );
    assert!(
        open["transaction_seconds"]
            .as_f64()
            .is_some_and(|t| t >= seconds),
        "{long}"
    );
    // Longest first.
    let all: Vec<f64> = items
        .as_array()
        .context("long-running list")?
        .iter()
        .filter_map(|i| i["seconds"].as_f64())
        .collect();
    assert!(all.windows(2).all(|w| w[0] >= w[1]), "{long}");
    let summary = long["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(&format!(
            "{} session(s) running or idle in transaction for over a minute",
            all.len()
        )) && summary.contains(&format!(
            "the longest {:.0} s",
            all.first().copied().unwrap_or(0.0)
        )),
        "{long}"
    );
    let conns = health_check(&s, "connections")?;
    assert!(
        conns["summary"]
            .as_str()
            .is_some_and(|t| t.contains("idle in transaction")),
        "{conns}"
    );
    assert_eq!(s["status"], "warning", "{s}");

    // Ended, they are no longer reported.
    let cancelled = number(
        &dba.pg,
        &format!("SELECT pg_cancel_backend({sleeper_pid})::int::text"),
    )
    .await?;
    assert_eq!(cancelled, 1.0);
    let err = sleeping
        .await?
        .err()
        .context("the sleep ended without being cancelled")?;
    assert!(
        err.as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c == "57014"),
        "{err}"
    );
    idle.execute("ROLLBACK").await?;
    let s = dba.ok("database_health", json!({})).await?;
    let long = health_check(&s, "long_running_queries")?;
    assert_eq!(long["status"], "ok", "{long}");
    assert_eq!(long["details"], json!([]), "{long}");
    Ok(())
}

#[tokio::test]
async fn top_queries_explains_how_to_enable_pg_stat_statements() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let dba = Dba::start(pg, &["--database-url", &url]).await?;
    let s = dba.ok("top_queries", json!({})).await?;
    assert_eq!(s["available"], false, "{s}");
    let how = s["how_to_enable"].as_str().unwrap_or_default();
    assert!(
        how.contains("not installed")
            && how.contains("shared_preload_libraries")
            && how.contains("CREATE EXTENSION pg_stat_statements"),
        "{how}"
    );

    // Created but its library not preloaded: a different, precise message.
    dba.pg
        .exec_as_superuser("app", "CREATE EXTENSION pg_stat_statements")
        .await?;
    let res = dba
        .call("top_queries", json!({"order_by": "calls"}))
        .await?;
    let s = structured(&res);
    assert_eq!(s["available"], false, "{s}");
    let how = s["how_to_enable"].as_str().unwrap_or_default();
    assert!(
        how.contains("not loaded") && how.contains("restart"),
        "{how}"
    );
    assert!(text(&res).contains("pg_stat_statements is not available"));

    let res = dba.call("top_queries", json!({"limit": 1000})).await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("1 to 100"), "{}", text(&res));
    let res = dba
        .call("top_queries", json!({"order_by": "slowest"}))
        .await?;
    assert!(is_error(&res));
    Ok(())
}

#[tokio::test]
async fn top_queries_ranks_statements_from_pg_stat_statements() -> Result<()> {
    let pg = Pg::start_with(&["-c", "shared_preload_libraries=pg_stat_statements"])?;
    let url = pg.create_db("app").await?;
    // pg_read_all_stats: the worker's role sees every statement's text.
    pg.exec_as_superuser(
        "app",
        "CREATE EXTENSION pg_stat_statements; GRANT pg_read_all_stats TO app",
    )
    .await?;
    let dba = Dba::start(pg, &["--database-url", &url]).await?;
    for n in [1000, 2000, 3000] {
        let res = mcp::call_tool(
            &dba.client,
            "query",
            json!({"sql": format!("SELECT count(*) FROM generate_series(1, {n}) g WHERE g % 7 = 0")}),
        )
        .await?;
        assert!(!is_error(&res), "{}", text(&res));
    }
    let s = dba
        .ok("top_queries", json!({"order_by": "calls", "limit": 50}))
        .await?;
    assert_eq!(s["available"], true, "{s}");
    assert_eq!(s["order_by"], "calls");
    assert_eq!(s["restricted"], false);
    assert!(s["extension_version"].is_string());
    let queries = s["queries"].as_array().context("queries")?;
    let ours = queries
        .iter()
        .find(|q| {
            q["query"]
                .as_str()
                .is_some_and(|t| t.contains("generate_series"))
        })
        .with_context(|| format!("our statement is not ranked: {s}"))?;
    // Normalized: the three literals became one entry with placeholders.
    assert_eq!(ours["calls"], 3, "{ours}");
    assert!(
        ours["query"]
            .as_str()
            .is_some_and(|t| t.contains('$') && !t.contains("3000")),
        "{ours}"
    );
    assert!(ours["total_time_ms"].as_f64().is_some_and(|t| t >= 0.0));
    let calls: Vec<u64> = queries.iter().filter_map(|q| q["calls"].as_u64()).collect();
    assert!(
        calls.windows(2).all(|w| w[0] >= w[1]),
        "not ranked by calls: {calls:?}"
    );

    let s = dba.ok("top_queries", json!({"limit": 2})).await?;
    assert_eq!(s["order_by"], "total_time");
    assert!(s["queries"].as_array().is_some_and(|q| q.len() <= 2), "{s}");
    Ok(())
}

const MAINTENANCE: &str = r#"
CREATE TABLE items (id int PRIMARY KEY, note text);
INSERT INTO items SELECT g, 'n' FROM generate_series(1, 5000) g;
DELETE FROM items WHERE id <= 2500;
CREATE TABLE "Mixed Case" (id int);
INSERT INTO "Mixed Case" VALUES (1), (2);
CREATE VIEW items_view AS SELECT * FROM items;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
"#;

#[tokio::test]
async fn analyze_and_vacuum_respect_modes_names_and_privileges() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec_as_superuser("postgres", "CREATE ROLE reader LOGIN")
        .await?;
    pg.exec("app", MAINTENANCE).await?;
    // Keep autovacuum from racing the assertions on dead rows.
    pg.exec("app", "ALTER TABLE items SET (autovacuum_enabled = false)")
        .await?;
    let reader_url = url.replace("app@", "reader@");
    let rw = format!("rw={url}");
    let ro = format!("ro={url}");
    let rd = format!("reader={reader_url}");
    let dba = Dba::start(
        pg,
        &[
            "--database",
            &rw,
            "--database",
            &ro,
            "--database",
            &rd,
            "--mode",
            "rw=read-write",
        ],
    )
    .await?;

    // ANALYZE works on a read-only target (it changes no data) and keeps
    // the new statistics.
    let s = dba
        .ok("analyze_table", json!({"table": "items", "database": "ro"}))
        .await?;
    assert_eq!(s["statement"], "ANALYZE items", "{s}");
    assert_eq!(s["table"], "items");
    assert!(s["before"]["last_analyze"].is_null(), "{s}");
    assert!(s["after"]["last_analyze"].is_string(), "{s}");
    let stats = dba
        .pg
        .column(
            "app",
            "SELECT count(*)::text FROM pg_stats WHERE tablename = 'items'",
        )
        .await?;
    assert_eq!(
        stats,
        vec![Some("2".to_string())],
        "statistics were committed"
    );

    // Quoted mixed-case names resolve; the statement names the table as
    // PostgreSQL prints it.
    let s = dba
        .ok(
            "analyze_table",
            json!({"table": "\"Mixed Case\"", "database": "rw"}),
        )
        .await?;
    assert_eq!(s["statement"], "ANALYZE \"Mixed Case\"", "{s}");

    // VACUUM only on read-write targets.
    let res = dba
        .call("vacuum_table", json!({"table": "items", "database": "ro"}))
        .await?;
    mcp::assert_tool_error(&res, "read_only", "--mode ro=read-write");

    let s = dba
        .ok(
            "vacuum_table",
            json!({"table": "public.items", "database": "rw", "analyze": true, "timeout_ms": 20000}),
        )
        .await?;
    assert_eq!(s["statement"], "VACUUM (ANALYZE) items", "{s}");
    assert!(
        s["before"]["dead_tuples"]
            .as_i64()
            .is_some_and(|n| n >= 2500),
        "{s}"
    );
    assert_eq!(s["after"]["dead_tuples"], 0, "{s}");
    assert!(s["after"]["last_vacuum"].is_string(), "{s}");
    assert_eq!(s["after"]["live_tuples"], 2500, "{s}");

    // Names are resolved by PostgreSQL, never spliced.
    for table in ["items; DROP TABLE items", "nosuch", "items_view", "a.b.c.d"] {
        for tool in ["analyze_table", "vacuum_table"] {
            let res = dba
                .call(tool, json!({"table": table, "database": "rw"}))
                .await?;
            assert!(is_error(&res), "{tool} {table}: {}", text(&res));
        }
    }
    let res = dba
        .call(
            "analyze_table",
            json!({"table": "nosuch", "database": "rw"}),
        )
        .await?;
    assert_eq!(structured(&res)["error"]["kind"], "undefined_object");
    let res = dba
        .call(
            "vacuum_table",
            json!({"table": "items_view", "database": "rw"}),
        )
        .await?;
    assert!(text(&res).contains("is a view"), "{}", text(&res));
    let alive = dba
        .pg
        .column("app", "SELECT count(*)::text FROM items")
        .await?;
    assert_eq!(alive, vec![Some("2500".to_string())]);

    // A role that does not own the table is told so instead of PostgreSQL
    // silently skipping the table.
    let res = dba
        .call(
            "analyze_table",
            json!({"table": "items", "database": "reader"}),
        )
        .await?;
    mcp::assert_tool_error(&res, "permission_denied", "role `reader` may not ANALYZE");

    // The health checks need no privilege beyond reading the catalogs.
    let s = dba
        .ok("database_health", json!({"database": "reader"}))
        .await?;
    for c in s["checks"].as_array().context("checks")? {
        assert_ne!(c["status"], "unknown", "{c}");
    }

    // Bad arguments.
    let res = dba.call("vacuum_table", json!({"database": "rw"})).await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("table"), "{}", text(&res));
    let res = dba
        .call(
            "analyze_table",
            json!({"table": "items", "database": "rw", "timeout_ms": 0}),
        )
        .await?;
    assert!(is_error(&res));

    // The history shows maintenance calls.
    let doc = mcp::read_json(&dba.client, "query-history://recent").await?;
    let ops: Vec<&str> = doc["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["operation"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ops.contains(&"vacuum_table") && ops.contains(&"analyze_table"),
        "{ops:?}"
    );
    Ok(())
}

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
"#;

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
    let res = dba.call("database_health", json!({})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    let check = |name: &str| -> Result<Value> {
        s["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .with_context(|| format!("no check {name} in {s}"))
    };
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

    assert_eq!(check("transaction_id_wraparound")?["status"], "ok");
    assert_eq!(check("connections")?["status"], "ok");
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

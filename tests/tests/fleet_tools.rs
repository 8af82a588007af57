//! `list_databases`, `fleet_status`, and the `query-history://recent` and
//! `stats://fleet` resources: real workers (one down), real PostgreSQL,
//! through a real gateway and MCP client.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgmcp_proto::v1::{Param, QueryRequest, param};
use pgmcp_tests::Pg;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, Client, assert_valid_output, is_error, structured, text};
use pgmcp_tests::worker::{InProcessWorker, query};
use rmcp::model::{ReadResourceRequestParams, Tool};
use serde_json::{Value, json};

/// A URL where no worker listens.
fn dead_worker_url() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(format!("http://{addr}"))
}

async fn tool(client: &Client, name: &str) -> Result<Tool> {
    client
        .list_all_tools()
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .with_context(|| format!("no tool {name}"))
}

/// Calls `name` and checks the result against the tool's outputSchema.
async fn call(client: &Client, name: &str, args: Value) -> Result<rmcp::model::CallToolResult> {
    let res = mcp::call_tool(client, name, args).await?;
    assert_valid_output(&tool(client, name).await?, &res)?;
    Ok(res)
}

/// Two workers serving different databases of one cluster, plus a worker
/// that is down.
struct Fleet {
    client: Client,
    _gateway: InProcessGateway,
    alpha: InProcessWorker,
    beta: InProcessWorker,
    dead: String,
    _pg: Pg,
}

async fn fleet(alpha_flags: &[&str]) -> Result<Fleet> {
    let pg = Pg::start()?;
    let alpha_url = pg.create_db("alpha").await?;
    let beta_url = pg.create_db("beta").await?;
    let mut flags = vec!["--database-url", alpha_url.as_str(), "--name", "worker-a"];
    flags.extend_from_slice(alpha_flags);
    let alpha = InProcessWorker::start(&flags).await?;
    let beta = InProcessWorker::start(&[
        "--database-url",
        &beta_url,
        "--mode",
        "read-write",
        "--name",
        "worker-b",
    ])
    .await?;
    let dead = dead_worker_url()?;
    let gateway = InProcessGateway::start(&[alpha.url(), beta.url(), dead.clone()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;
    Ok(Fleet {
        client,
        _gateway: gateway,
        alpha,
        beta,
        dead,
        _pg: pg,
    })
}

#[tokio::test]
async fn list_databases_spans_the_fleet_and_names_a_down_worker() -> Result<()> {
    let f = fleet(&[]).await?;
    let t = tool(&f.client, "list_databases").await?;
    let ann = t.annotations.clone().context("annotations")?;
    assert_eq!(ann.read_only_hint, Some(true));
    assert_eq!(ann.open_world_hint, Some(false));

    let res = call(&f.client, "list_databases", json!({})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(
        s["databases"],
        json!([
            {"name": "alpha", "mode": "read-only", "database": "alpha",
             "server_version": s["databases"][0]["server_version"],
             "workers": [{"worker_id": "worker-a", "url": f.alpha.url()}]},
            {"name": "beta", "mode": "read-write", "database": "beta",
             "server_version": s["databases"][1]["server_version"],
             "workers": [{"worker_id": "worker-b", "url": f.beta.url()}]},
        ]),
        "{s}"
    );
    assert!(
        s["databases"][0]["server_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())),
        "{s}"
    );
    assert_eq!(s["unreachable_workers"][0]["url"], json!(f.dead), "{s}");
    let t = text(&res);
    assert!(t.contains("alpha (read-only"), "{t}");
    let res = call(&f.client, "list_databases", json!({"filter": "a"})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("unknown field `filter`"),
        "{}",
        text(&res)
    );
    assert!(t.contains("Unreachable worker"), "{t}");

    // With a worker per database, `query` reaches the one serving it.
    for db in ["alpha", "beta", "alpha", "beta"] {
        let res = mcp::call_tool(
            &f.client,
            "query",
            json!({"sql": "SELECT current_database()", "database": db}),
        )
        .await?;
        assert!(!is_error(&res), "{}", text(&res));
        assert_eq!(structured(&res)["rows"], json!([[db]]));
    }
    let res = mcp::call_tool(
        &f.client,
        "query",
        json!({"sql": "SELECT 1", "database": "gamma"}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("no database named `gamma`"),
        "{}",
        text(&res)
    );

    // DBA calls go to the worker serving the database; without one named,
    // a fleet serving several is an error, not a guess.
    let dba = InProcessGateway::start(
        &[f.alpha.url(), f.beta.url(), f.dead.clone()],
        &["--toolsets", "all"],
    )
    .await?;
    let client = mcp::http_client(&dba.mcp_url()).await?;
    for db in ["beta", "alpha", "beta"] {
        let res = mcp::call_tool(&client, "top_queries", json!({"database": db})).await?;
        assert!(!is_error(&res), "{}", text(&res));
        assert_eq!(structured(&res)["database"], db);
    }
    let res = mcp::call_tool(&client, "database_health", json!({})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("several databases are served (alpha, beta)"),
        "{}",
        text(&res)
    );
    Ok(())
}

#[tokio::test]
async fn fleet_status_reports_workers_pools_and_capacity() -> Result<()> {
    // worker-a may open 190 + 1 connections, worker-b 10 + 1: more than the
    // 200 − 3 the test cluster allows ordinary roles.
    let f = fleet(&["--pool-max-connections", "190"]).await?;
    let res = call(&f.client, "fleet_status", json!({})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["workers_total"], 3, "{s}");
    assert_eq!(s["workers_reachable"], 2, "{s}");
    let workers = s["workers"].as_array().context("workers")?;
    let a = &workers[0];
    assert_eq!(a["url"], json!(f.alpha.url()));
    assert_eq!(a["reachable"], true);
    assert_eq!(a["health"], "serving");
    assert_eq!(a["worker_id"], "worker-a");
    assert_eq!(a["version"], env!("CARGO_PKG_VERSION"));
    let pool = &a["targets"][0]["pool"];
    assert_eq!(pool["max_connections"], 190, "{s}");
    assert_eq!(pool["waiting"], 0);
    assert!(pool["size"].as_u64().is_some_and(|n| n >= 1), "{s}");
    assert_eq!(
        pool["in_use"].as_u64().unwrap_or(99) + pool["idle"].as_u64().unwrap_or(99),
        pool["size"].as_u64().unwrap_or(0)
    );
    assert_eq!(a["targets"][0]["side_connection"]["max_connections"], 1);
    assert_eq!(workers[1]["targets"][0]["mode"], "read-write");
    assert_eq!(workers[2]["reachable"], false);
    assert_eq!(workers[2]["health"], "unreachable");
    assert!(workers[2]["error"].is_string(), "{s}");

    // Both databases live on one server, which shares one max_connections.
    let servers = s["servers"].as_array().context("servers")?;
    assert_eq!(servers.len(), 1, "{s}");
    let srv = &servers[0];
    assert_eq!(srv["databases"], json!(["alpha", "beta"]));
    assert_eq!(srv["max_connections"], 200);
    assert_eq!(srv["superuser_reserved_connections"], 3);
    assert_eq!(srv["fleet_max_connections"], 191 + 11);
    assert_eq!(srv["status"], "warning");
    let warnings = s["warnings"].to_string();
    assert!(
        warnings.contains("may open up to 202 connections"),
        "{warnings}"
    );
    assert!(warnings.contains(&f.dead), "{warnings}");
    let t = text(&res);
    assert!(t.contains("2 of 3 worker(s) reachable"), "{t}");

    // The same document as a resource.
    let resources = f.client.list_all_resources().await?;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"stats://fleet"), "{uris:?}");
    assert!(uris.contains(&"query-history://recent"), "{uris:?}");
    let doc = mcp::read_json(&f.client, "stats://fleet").await?;
    assert_eq!(doc["workers_reachable"], 2, "{doc}");
    assert_eq!(doc["servers"][0]["fleet_max_connections"], 202, "{doc}");

    let err = f
        .client
        .read_resource(ReadResourceRequestParams::new("stats://nothing"))
        .await;
    assert!(
        err.is_err_and(|e| e.to_string().contains("no resource")),
        "unknown resource must fail"
    );
    Ok(())
}

#[tokio::test]
async fn pool_stats_show_callers_waiting_for_a_busy_pool() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--pool-max-connections",
        "1",
        "--pool-min-connections",
        "1",
        "--pool-acquire-timeout-ms",
        "20000",
        // Admit more calls than the pool holds, so the second one waits
        // for the connection instead of being refused as overloaded.
        "--max-concurrent-calls",
        "4",
    ])
    .await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;

    let pool = |s: &Value| s["workers"][0]["targets"][0]["pool"].clone();
    let status = async || -> Result<Value> {
        Ok(structured(
            &mcp::call_tool(&client, "fleet_status", json!({})).await?,
        ))
    };
    // Wait (bounded) until `pred` holds for the pool.
    let wait_for = async |pred: &dyn Fn(&Value) -> bool| -> Result<Value> {
        for _ in 0..200 {
            let s = status().await?;
            if pred(&pool(&s)) {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("pool never reached the expected state")
    };

    let busy = mcp::call_tool(&client, "query", json!({"sql": "SELECT pg_sleep(1.5)"}));
    let watch = async {
        wait_for(&|p| p["in_use"] == 1).await?;
        let waiter = mcp::call_tool(&client, "query", json!({"sql": "SELECT 42 AS n"}));
        let seen = async {
            let s = wait_for(&|p| p["waiting"].as_u64().is_some_and(|n| n >= 1)).await?;
            let w = s["warnings"].to_string();
            assert!(w.contains("wait for a connection"), "{w}");
            assert_eq!(pool(&s)["max_connections"], 1);
            anyhow::Ok(())
        };
        let (waited, seen) = tokio::join!(waiter, seen);
        seen?;
        let waited = waited?;
        assert!(!is_error(&waited), "{}", text(&waited));
        assert_eq!(structured(&waited)["rows"], json!([[42]]));
        anyhow::Ok(())
    };
    let (busy, watched) = tokio::join!(busy, watch);
    watched?;
    assert!(!is_error(&busy?));
    let after = wait_for(&|p| p["waiting"] == 0 && p["in_use"] == 0).await?;
    assert_eq!(after["servers"][0]["status"], "ok", "{after}");
    Ok(())
}

fn text_param(s: &str) -> Param {
    Param {
        value: Some(param::Value::TextValue(s.into())),
    }
}

#[tokio::test]
async fn history_merges_workers_newest_first_without_parameter_values() -> Result<()> {
    let f = fleet(&[]).await?;
    let mut a = f.alpha.client().await?;
    let mut b = f.beta.client().await?;
    query(
        &mut a,
        QueryRequest {
            sql: "SELECT $1::text AS secret".into(),
            params: vec![text_param("hunter2-do-not-log")],
            ..QueryRequest::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    query(
        &mut b,
        QueryRequest {
            sql: "SELECT g FROM generate_series(1, 7) g".into(),
            ..QueryRequest::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failed = query(
        &mut a,
        QueryRequest {
            sql: "SELEC 1".into(),
            ..QueryRequest::default()
        },
    )
    .await;
    assert!(failed.is_err());

    let doc = mcp::read_json(&f.client, "query-history://recent").await?;
    assert!(
        !doc.to_string().contains("hunter2"),
        "parameter values must not be recorded: {doc}"
    );
    let entries = doc["entries"].as_array().context("entries")?;
    assert_eq!(entries.len(), 3, "{doc}");
    // Newest first, from both workers.
    assert_eq!(entries[0]["sql"], "SELEC 1");
    assert_eq!(entries[0]["outcome"], "error");
    assert_eq!(entries[0]["error_kind"], "syntax");
    assert_eq!(entries[0]["sqlstate"], "42601");
    assert_eq!(entries[0]["worker_id"], "worker-a");
    assert_eq!(entries[1]["sql"], "SELECT g FROM generate_series(1, 7) g");
    assert_eq!(entries[1]["worker_id"], "worker-b");
    assert_eq!(entries[1]["database"], "beta");
    assert_eq!(entries[1]["rows"], 7);
    assert_eq!(entries[1]["outcome"], "ok");
    assert_eq!(entries[2]["sql"], "SELECT $1::text AS secret");
    assert_eq!(entries[2]["param_count"], 1);
    assert_eq!(entries[2]["rows"], 1);
    assert_eq!(entries[2]["operation"], "query");
    for e in entries {
        assert!(
            e["started_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        assert!(e["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert_eq!(e["principal"], "");
        assert_eq!(e["trace_id"], "");
    }
    let workers = doc["workers"].as_array().context("workers")?;
    assert_eq!(workers.len(), 3);
    assert_eq!(workers[0]["capacity"], 500);
    assert_eq!(workers[2]["reachable"], false);

    // Calls through the gateway are recorded too.
    let res = mcp::call_tool(
        &f.client,
        "query",
        json!({"sql": "SELECT $1::int + 1", "params": [41], "database": "beta"}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let doc = mcp::read_json(&f.client, "query-history://recent").await?;
    assert_eq!(doc["entries"][0]["sql"], "SELECT $1::int + 1", "{doc}");
    assert_eq!(doc["entries"][0]["worker_id"], "worker-b");
    Ok(())
}

#[tokio::test]
async fn history_ring_is_bounded_by_its_size() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let worker = InProcessWorker::start(&["--database-url", &url, "--history-size", "3"]).await?;
    let mut c = worker.client().await?;
    for i in 0..5 {
        query(
            &mut c,
            QueryRequest {
                sql: format!("SELECT {i}"),
                ..QueryRequest::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let h = c
        .history(pgmcp_proto::v1::HistoryRequest { limit: 0 })
        .await?
        .into_inner();
    let sqls: Vec<&str> = h.entries.iter().map(|e| e.sql.as_str()).collect();
    assert_eq!(sqls, ["SELECT 4", "SELECT 3", "SELECT 2"]);
    assert_eq!(h.capacity, 3);
    assert_eq!(h.recorded, 5);
    Ok(())
}

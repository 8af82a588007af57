//! Observability end to end: one trace across gateway and worker (real
//! processes exporting over OTLP to an in-process receiver), the caller's
//! trace context continued, errors on spans, the traceparent inside
//! PostgreSQL, JSON logs with trace ids, and the Prometheus metrics of both
//! processes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use pgmcp_tests::Pg;
use pgmcp_tests::gateway::{InProcessGateway, http_get};
use pgmcp_tests::mcp::{self, is_error, text};
use pgmcp_tests::otlp::{Collector, SpanRecord};
use pgmcp_tests::procs::Proc;
use pgmcp_tests::worker::InProcessWorker;
use serde_json::json;

const SETUP: &str = "CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders VALUES (1, 'one'), (2, 'two'), (3, 'three');";

const WAIT: Duration = Duration::from_secs(30);

/// A cluster with database `app` (see [`SETUP`]) and its URL.
async fn app_db() -> Result<(Pg, String)> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec("app", SETUP).await?;
    Ok((pg, url))
}

/// `OTEL_*` settings pointing at `otlp` over `protocol`, exporting batches
/// every `delay_ms`.
fn otel_env(otlp: &Collector, protocol: &str, delay_ms: &str) -> Vec<(&'static str, String)> {
    let endpoint = match protocol {
        "grpc" => otlp.grpc_endpoint(),
        _ => otlp.http_endpoint(),
    };
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms.to_string()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A worker and a gateway process exporting to `otlp`.
async fn traced_pair(
    url: &str,
    env: &[(&'static str, String)],
    worker_flags: &[&str],
) -> Result<(Proc, Proc)> {
    let mut worker_env = as_refs(env);
    worker_env.push(("RUST_LOG", "info,sqlx=debug"));
    worker_env.push(("PGMCP_LOG_CALLS", "true"));
    let worker = Proc::worker(url, worker_flags, &worker_env).await?;
    let mut gateway_env = as_refs(env);
    gateway_env.push(("PGMCP_LOG_CALLS", "true"));
    let gateway = Proc::gateway(&[worker.url()], &[], &gateway_env).await?;
    Ok((worker, gateway))
}

fn mcp_url(gateway: &Proc) -> String {
    format!("{}/mcp", gateway.url())
}

fn find<'a>(
    spans: &'a [SpanRecord],
    what: &str,
    pred: impl Fn(&SpanRecord) -> bool,
) -> Result<&'a SpanRecord> {
    spans
        .iter()
        .find(|s| pred(s))
        .ok_or_else(|| anyhow!("no {what} among {:#?}", names(spans)))
}

fn names(spans: &[SpanRecord]) -> Vec<String> {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} [{}] {:?} trace={} span={} parent={}",
                s.name, s.service, s.kind, s.trace_id, s.span_id, s.parent_span_id
            )
        })
        .collect()
}

/// The spans of one `tools/call query` in trace `trace_id`, in path order.
struct Path<'a> {
    mcp: &'a SpanRecord,
    client: &'a SpanRecord,
    server: &'a SpanRecord,
    acquire: &'a SpanRecord,
    db: &'a SpanRecord,
}

fn path<'a>(spans: &'a [SpanRecord], trace_id: &str) -> Result<Path<'a>> {
    let in_trace = |s: &SpanRecord| s.trace_id == trace_id;
    let mcp = find(spans, "gateway SERVER span", |s| {
        in_trace(s) && s.service == "pgmcp-gateway" && s.kind == SpanKind::Server
    })?;
    let client = find(spans, "gRPC CLIENT span", |s| {
        in_trace(s) && s.kind == SpanKind::Client && s.parent_span_id == mcp.span_id
    })?;
    let server = find(spans, "worker SERVER span", |s| {
        in_trace(s) && s.kind == SpanKind::Server && s.parent_span_id == client.span_id
    })?;
    let acquire = find(spans, "pool-acquire span", |s| {
        in_trace(s) && s.name == "pool.acquire" && s.parent_span_id == server.span_id
    })?;
    let db = find(spans, "DB span", |s| {
        in_trace(s)
            && s.attr("db.system.name") == Some("postgresql")
            && s.parent_span_id == server.span_id
    })?;
    Ok(Path {
        mcp,
        client,
        server,
        acquire,
        db,
    })
}

fn has_db_span(trace_id: &str) -> impl Fn(&[SpanRecord]) -> bool + '_ {
    move |spans| {
        let in_trace: Vec<&SpanRecord> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        in_trace.iter().any(|s| s.attr("db.system.name").is_some())
            && in_trace
                .iter()
                .any(|s| s.service == "pgmcp-gateway" && s.kind == SpanKind::Server)
    }
}

/// The trace id of the (only) gateway span named `name`.
fn trace_of(spans: &[SpanRecord], name: &str) -> Result<String> {
    Ok(find(spans, name, |s| {
        s.name == name && s.service == "pgmcp-gateway"
    })?
    .trace_id
    .clone())
}

#[tokio::test]
async fn one_tools_call_is_one_trace_across_both_hops() -> Result<()> {
    let (_pg, url) = app_db().await?;
    let otlp = Collector::start().await?;
    // A minute between batches: spans can only arrive through the flush on
    // SIGTERM, which this test therefore checks too.
    let env = otel_env(&otlp, "grpc", "60000");
    let (mut worker, mut gateway) = traced_pair(&url, &env, &[]).await?;

    // A readiness probe is not work for a caller: it leaves no trace.
    let (status, _) = http_get(gateway.addr, "/readyz", "127.0.0.1").await?;
    assert_eq!(status, 200);

    let client = mcp::http_client(&mcp_url(&gateway)).await?;
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT id, note FROM orders ORDER BY id"}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    client.cancel().await?;
    assert!(gateway.stop().await?.success(), "{:#?}", gateway.logs());
    assert!(worker.stop().await?.success(), "{:#?}", worker.logs());

    let spans = otlp
        .wait_for("complete trace", WAIT, |s| {
            s.iter().any(|s| s.name == "SELECT orders")
                && s.iter().any(|s| s.name == "tools/call query")
        })
        .await?;
    let trace = trace_of(&spans, "tools/call query")?;
    let p = path(&spans, &trace)?;

    // Gateway SERVER span: a new trace, MCP attributes.
    assert_eq!(p.mcp.name, "tools/call query");
    assert_eq!(
        p.mcp.parent_span_id, "",
        "a call without context starts a trace"
    );
    assert_eq!(p.mcp.attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(p.mcp.attr("gen_ai.tool.name"), Some("query"));
    assert_eq!(p.mcp.attr("gen_ai.operation.name"), Some("execute_tool"));
    // Without authentication every HTTP caller is the principal `anonymous`.
    assert_eq!(p.mcp.attr("enduser.id"), Some("anonymous"));
    assert!(
        p.mcp
            .attr("jsonrpc.request.id")
            .is_some_and(|id| !id.is_empty())
    );
    assert!(
        p.mcp
            .attr("mcp.protocol.version")
            .is_some_and(|v| v.starts_with("20")),
        "{:?}",
        p.mcp.attributes
    );
    assert_eq!(p.mcp.status, StatusCode::Unset);

    // gRPC CLIENT span of the gateway.
    assert_eq!(p.client.service, "pgmcp-gateway");
    assert_eq!(p.client.name, "pgmcp.v1.Worker/Query");
    assert_eq!(p.client.attr("rpc.system.name"), Some("grpc"));
    assert_eq!(p.client.attr("rpc.method"), Some("pgmcp.v1.Worker/Query"));
    assert_eq!(p.client.attr("rpc.status_code"), Some("OK"));
    assert_eq!(p.client.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(
        p.client.attr("server.port"),
        Some(worker.addr.port().to_string().as_str())
    );

    // Worker SERVER span, continuing the context from the metadata.
    assert_eq!(p.server.service, "pgmcp-worker");
    assert_eq!(p.server.name, "pgmcp.v1.Worker/Query");
    assert_eq!(p.server.attr("rpc.system.name"), Some("grpc"));
    assert_eq!(p.server.attr("rpc.status_code"), Some("OK"));
    // The principal travelled in the call's metadata.
    assert_eq!(p.server.attr("enduser.id"), Some("anonymous"));

    // Pool acquire and DB spans.
    assert_eq!(p.acquire.service, "pgmcp-worker");
    assert_eq!(
        p.acquire.attr("db.client.connection.pool.name"),
        Some("app")
    );
    assert_eq!(p.db.name, "SELECT orders");
    assert_eq!(p.db.kind, SpanKind::Client);
    assert_eq!(p.db.attr("db.namespace"), Some("app"));
    assert_eq!(p.db.attr("db.query.summary"), Some("SELECT orders"));
    assert_eq!(p.db.attr("db.operation.name"), Some("SELECT"));
    assert_eq!(p.db.attr("db.collection.name"), Some("orders"));
    assert_eq!(p.db.attr("db.response.returned_rows"), Some("3"));
    assert!(
        p.db.attr("pgmcp.db.response.returned_bytes")
            .and_then(|b| b.parse::<u64>().ok())
            .is_some_and(|b| b > 0),
        "{:?}",
        p.db.attributes
    );
    assert_eq!(p.db.status, StatusCode::Unset);

    // Resources: two services, version, instance ids.
    for s in [p.mcp, p.db] {
        assert_eq!(
            s.resource.get("service.version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert!(
            s.resource
                .get("service.instance.id")
                .is_some_and(|i| !i.is_empty())
        );
    }
    assert!(p.db.resource["service.instance.id"].starts_with("pgmcp-worker-"));

    // Conventions' attributes only, not `tracing`'s bookkeeping.
    for key in ["thread.id", "code.file.path", "busy_ns", "target"] {
        assert!(
            !p.db.attributes.contains_key(key),
            "{key} in {:?}",
            p.db.attributes
        );
    }

    // Only our own steps: no h2/hyper/tower internals, no probe traces.
    let allowed = [
        "tools/call query",
        "tools/list",
        "pgmcp.v1.Worker/Query",
        "pool.acquire",
        "SELECT orders",
    ];
    for s in &spans {
        assert!(allowed.contains(&s.name.as_str()), "unexpected span {s:?}");
    }

    // JSON logs: every line inside a traced span carries its ids.
    for (proc, needle) in [(&gateway, "MCP request done"), (&worker, "")] {
        let logs = proc.logs();
        let mut traced_lines = 0;
        for line in &logs {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
            let in_our_span = v["spans"].as_array().is_some_and(|spans| {
                spans.iter().any(|s| {
                    matches!(
                        s["name"].as_str(),
                        Some(
                            "mcp.request"
                                | "grpc.client"
                                | "grpc.server"
                                | "pool.acquire"
                                | "db.query"
                        )
                    )
                })
            });
            if in_our_span {
                traced_lines += 1;
                assert_eq!(v["trace_id"].as_str(), Some(trace.as_str()), "{line}");
                assert!(
                    v["span_id"].as_str().is_some_and(|s| s.len() == 16),
                    "{line}"
                );
            }
        }
        assert!(traced_lines > 0, "no log line inside a span: {logs:#?}");
        if !needle.is_empty() {
            let done = logs
                .iter()
                .find(|l| l.contains(needle))
                .ok_or_else(|| anyhow!("no `{needle}` line"))?;
            assert!(
                done.contains(&format!("\"trace_id\":\"{trace}\"")),
                "{done}"
            );
            assert!(
                !done.contains("SELECT"),
                "SQL must not reach the access log: {done}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn caller_trace_context_is_continued_from_header_and_meta() -> Result<()> {
    const HEADER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const HEADER_SPAN: &str = "b7ad6b7169203331";
    const META_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const META_SPAN: &str = "00f067aa0ba902b7";
    let header_tp = format!("00-{HEADER_TRACE}-{HEADER_SPAN}-01");
    let meta_tp = format!("00-{META_TRACE}-{META_SPAN}-01");

    let (_pg, url) = app_db().await?;
    let otlp = Collector::start().await?;
    // OTLP over HTTP/protobuf this time.
    let env = otel_env(&otlp, "http/protobuf", "100");
    let (_worker, gateway) = traced_pair(&url, &env, &[]).await?;
    let sql = json!({"sql": "SELECT count(*) FROM orders"});

    // 1. `traceparent` HTTP header.
    let with_header =
        mcp::http_client_with_headers(&mcp_url(&gateway), &[("traceparent", &header_tp)]).await?;
    let res = mcp::call_tool(&with_header, "query", sql.clone()).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let spans = otlp
        .wait_for("the header's trace", WAIT, has_db_span(HEADER_TRACE))
        .await?;
    let p = path(&spans, HEADER_TRACE)?;
    assert_eq!(p.mcp.parent_span_id, HEADER_SPAN);
    assert_eq!(p.db.service, "pgmcp-worker");

    // 2. `params._meta.traceparent` (SEP-414).
    let plain = mcp::http_client(&mcp_url(&gateway)).await?;
    let res = mcp::call_tool_with_meta(
        &plain,
        "query",
        sql.clone(),
        json!({"traceparent": meta_tp}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let spans = otlp
        .wait_for("the meta's trace", WAIT, has_db_span(META_TRACE))
        .await?;
    let p = path(&spans, META_TRACE)?;
    assert_eq!(p.mcp.parent_span_id, META_SPAN);
    assert!(p.mcp.links.is_empty());
    // The worker's history links the call to its trace.
    let history = mcp::read_json(&plain, "query-history://recent").await?;
    let traced = history["entries"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["trace_id"] == META_TRACE));
    assert!(traced, "no history entry in trace {META_TRACE}: {history}");

    // 3. Both: `_meta` wins, the header's context becomes a link.
    const BOTH_TRACE: &str = "11111111111111111111111111111111";
    let both_tp = format!("00-{BOTH_TRACE}-2222222222222222-01");
    let res = mcp::call_tool_with_meta(&with_header, "query", sql, json!({"traceparent": both_tp}))
        .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let spans = otlp
        .wait_for("the third trace", WAIT, has_db_span(BOTH_TRACE))
        .await?;
    let p = path(&spans, BOTH_TRACE)?;
    assert_eq!(p.mcp.parent_span_id, "2222222222222222");
    assert_eq!(
        p.mcp.links,
        vec![(HEADER_TRACE.to_string(), HEADER_SPAN.to_string())]
    );
    Ok(())
}

#[tokio::test]
async fn failing_statement_sets_error_status_and_sqlstate() -> Result<()> {
    let (_pg, url) = app_db().await?;
    let otlp = Collector::start().await?;
    let env = otel_env(&otlp, "grpc", "100");
    let (_worker, gateway) = traced_pair(&url, &env, &[]).await?;
    let client = mcp::http_client(&mcp_url(&gateway)).await?;
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT * FROM no_such_table"}),
    )
    .await?;
    assert!(is_error(&res), "{}", text(&res));

    let spans = otlp
        .wait_for("the failed call's spans", WAIT, |s| {
            s.iter()
                .any(|s| s.attr("db.response.status_code").is_some())
                && s.iter().any(|s| s.name == "tools/call query")
                // The worker's SERVER span ends last (after the error's
                // did-you-mean lookup), so it may come in a later batch.
                && s.iter().any(|s| {
                    s.service == "pgmcp-worker" && s.name == "pgmcp.v1.Worker/Query"
                })
        })
        .await?;
    let trace = trace_of(&spans, "tools/call query")?;
    let p = path(&spans, &trace)?;
    assert_eq!(p.db.name, "SELECT no_such_table");
    assert_eq!(p.db.attr("db.response.status_code"), Some("42P01"));
    assert_eq!(p.db.attr("error.type"), Some("42P01"));
    assert_eq!(p.db.status, StatusCode::Error);
    // The worker did its job (a caller error is not a server fault) …
    assert_eq!(p.server.attr("rpc.status_code"), Some("NOT_FOUND"));
    assert_eq!(p.server.status, StatusCode::Unset);
    // … the gateway's call failed …
    assert_eq!(p.client.attr("rpc.status_code"), Some("NOT_FOUND"));
    assert_eq!(p.client.status, StatusCode::Error);
    // … and the tool reported an error.
    assert_eq!(p.mcp.attr("error.type"), Some("tool_error"));
    assert_eq!(p.mcp.status, StatusCode::Error);
    Ok(())
}

/// Polls `pg_stat_activity` for an active statement of `application_name`
/// running `pg_sleep`, and returns its text.
async fn active_query(pg: &Pg, application_name: &str) -> Result<String> {
    let sql = format!(
        "SELECT query FROM pg_stat_activity WHERE application_name = '{application_name}' \
         AND state = 'active' AND query LIKE '%pg_sleep%'"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(Some(q)) = pg.column("app", &sql).await?.into_iter().next() {
            return Ok(q);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no active pg_sleep of {application_name} in pg_stat_activity");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn traceparent_appears_in_pg_stat_activity() -> Result<()> {
    const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
    let (pg, url) = app_db().await?;
    let otlp = Collector::start().await?;
    let env = otel_env(&otlp, "grpc", "100");
    let (_worker, gateway) = traced_pair(&url, &env, &["--name", "obs-worker"]).await?;
    let client = mcp::http_client(&mcp_url(&gateway)).await?;

    let call = tokio::spawn(async move {
        mcp::call_tool_with_meta(
            &client,
            "query",
            json!({"sql": "SELECT pg_sleep(2)"}),
            json!({"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")}),
        )
        .await
    });
    let query = active_query(&pg, "obs-worker").await?;
    let res = call.await??;
    assert!(!is_error(&res), "{}", text(&res));
    let prefix = format!("SELECT pg_sleep(2)\n/*traceparent='00-{TRACE}-");
    assert!(query.starts_with(&prefix), "{query}");
    assert!(query.ends_with("-01'*/"), "{query}");

    // The comment names the DB span.
    let spans = otlp
        .wait_for("the DB span", WAIT, has_db_span(TRACE))
        .await?;
    let db = path(&spans, TRACE)?.db;
    assert!(
        query.contains(&format!("-{}-01'", db.span_id)),
        "{query} vs {db:?}"
    );

    // `--sql-comment false` sends the SQL untouched, even when traced.
    let mut plain_env = as_refs(&env);
    plain_env.push(("RUST_LOG", "info"));
    let plain = Proc::worker(
        &url,
        &["--name", "obs-plain", "--sql-comment", "false"],
        &plain_env,
    )
    .await?;
    let mut grpc = pgmcp_proto::v1::worker_client::WorkerClient::connect(plain.url()).await?;
    let call = tokio::spawn(async move {
        let mut req = tonic::Request::new(pgmcp_tests::worker::sql("SELECT pg_sleep(2)"));
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{TRACE}-00f067aa0ba902b7-01").parse()?,
        );
        let mut stream = grpc.query(req).await?.into_inner();
        while stream.message().await?.is_some() {}
        anyhow::Ok(())
    });
    let query = active_query(&pg, "obs-plain").await?;
    call.await??;
    assert_eq!(query, "SELECT pg_sleep(2)");
    Ok(())
}

#[tokio::test]
async fn traced_and_commented_sql_decodes_every_type() -> Result<()> {
    use pgmcp_tests::types_fixture::{SELECT_SQL, SETUP_SQL, expected_rows};
    const TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4736";
    let pg = Pg::start()?;
    let url = pg.create_db("types").await?;
    pg.exec("types", SETUP_SQL).await?;
    let otlp = Collector::start().await?;
    let env = otel_env(&otlp, "grpc", "100");
    let worker = Proc::worker(&url, &[], &as_refs(&env)).await?;
    let mut client = pgmcp_proto::v1::worker_client::WorkerClient::connect(worker.url()).await?;

    // Statements with a SQLCommenter comment are sent unprepared; results
    // and user-defined parameter types must come out exactly as without.
    let cases = [
        (SELECT_SQL, vec![], expected_rows()),
        (
            "SELECT c_enum, c_domain FROM all_types WHERE c_enum = $1 AND c_composite IS NOT NULL",
            vec!["happy"],
            vec![json!(["happy", 42])],
        ),
    ];
    for (sql, params, want) in cases {
        let mut req = pgmcp_tests::worker::sql(sql);
        req.params = params
            .iter()
            .map(|p| pgmcp_proto::v1::Param {
                value: Some(pgmcp_proto::v1::param::Value::TextValue(p.to_string())),
            })
            .collect();
        let mut req = tonic::Request::new(req);
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{TRACE}-00f067aa0ba902b7-01").parse()?,
        );
        let mut stream = client.query(req).await?.into_inner();
        let mut rows = Vec::new();
        while let Some(msg) = stream.message().await? {
            if let Some(pgmcp_proto::v1::query_response::Part::Rows(batch)) = msg.part {
                for row in batch.rows {
                    rows.push(serde_json::from_slice::<serde_json::Value>(&row)?);
                }
            }
        }
        assert_eq!(rows, want, "{sql}");
    }
    let spans = otlp
        .wait_for("both DB spans", WAIT, |s| {
            s.iter()
                .filter(|s| s.trace_id == TRACE && s.attr("db.system.name").is_some())
                .count()
                == 2
        })
        .await?;
    assert!(spans.iter().any(|s| s.name == "SELECT all_types"));
    Ok(())
}

/// A Prometheus text exposition: series (name and labels) → value.
struct Exposition(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Exposition {
    async fn scrape(addr: SocketAddr) -> Result<Self> {
        let (status, body) = http_get(addr, "/metrics", "127.0.0.1").await?;
        if status != 200 {
            bail!("/metrics answered {status}: {body}");
        }
        let mut series = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (key, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| anyhow!("bad line {line}"))?;
            let (name, labels) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels: BTreeMap<String, String> = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            series.insert((name.to_string(), labels), value.parse()?);
        }
        Ok(Exposition(series))
    }

    /// Sum over the series of `name` whose labels include `labels`; `None`
    /// when there is no such series.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| *v)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

#[tokio::test]
async fn metrics_of_both_processes_expose_the_series_and_move() -> Result<()> {
    let (_pg, url) = app_db().await?;
    let mut worker =
        // Admission above the pool, so a second call waits for the pool.
        InProcessWorker::start(&[
            "--database-url",
            &url,
            "--pool-max-connections",
            "1",
            "--max-concurrent-calls",
            "4",
        ])
        .await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;

    let g0 = Exposition::scrape(gateway.addr).await?;
    let w0 = Exposition::scrape(worker.metrics_addr).await?;

    let ok = mcp::call_tool(&client, "query", json!({"sql": "SELECT id FROM orders"})).await?;
    assert!(!is_error(&ok), "{}", text(&ok));
    let bad = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT * FROM no_such_table"}),
    )
    .await?;
    assert!(is_error(&bad));

    // Waiting for the pool: one call holds the only connection, another waits.
    let client = std::sync::Arc::new(client);
    let holder = {
        let c = client.clone();
        tokio::spawn(async move {
            mcp::call_tool(&c, "query", json!({"sql": "SELECT pg_sleep(1.5)"})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiter = {
        let c = client.clone();
        tokio::spawn(async move { mcp::call_tool(&c, "query", json!({"sql": "SELECT 1"})).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let busy = loop {
        let w = Exposition::scrape(worker.metrics_addr).await?;
        if w.value("pgmcp_worker_pool_waiting", &[("target", "app")]) >= 1.0 {
            break w;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no waiting caller seen in the worker's metrics");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        busy.value("pgmcp_worker_pool_in_use_connections", &[("target", "app")]),
        1.0
    );
    assert_eq!(
        busy.value("pgmcp_worker_pool_idle_connections", &[("target", "app")]),
        0.0
    );
    assert!(!is_error(&holder.await??));
    assert!(!is_error(&waiter.await??));

    let g1 = Exposition::scrape(gateway.addr).await?;
    let w1 = Exposition::scrape(worker.metrics_addr).await?;
    let moved = |before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    // Gateway: MCP calls by method, tool and outcome; durations; gRPC client
    // calls by method and code; worker health.
    let call = [("method", "tools/call"), ("tool", "query")];
    assert_eq!(
        moved(
            &g0,
            &g1,
            "pgmcp_gateway_mcp_requests_total",
            &[call[0], call[1], ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            &g0,
            &g1,
            "pgmcp_gateway_mcp_requests_total",
            &[call[0], call[1], ("outcome", "tool_error")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &g0,
            &g1,
            "pgmcp_gateway_mcp_request_duration_seconds_count",
            &call
        ),
        4.0
    );
    let rpc = ("method", "pgmcp.v1.Worker/Query");
    assert_eq!(
        moved(
            &g0,
            &g1,
            "pgmcp_gateway_grpc_client_duration_seconds_count",
            &[rpc, ("code", "OK")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            &g0,
            &g1,
            "pgmcp_gateway_grpc_client_duration_seconds_count",
            &[rpc, ("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(
        g1.get("pgmcp_gateway_worker_up", &[("worker", &worker.url())]),
        Some(1.0)
    );

    // Worker: gRPC server calls, pool state, acquire waits, errors by class,
    // rows and bytes.
    let target = ("target", "app");
    assert_eq!(
        moved(
            &w0,
            &w1,
            "pgmcp_worker_grpc_server_duration_seconds_count",
            &[rpc, ("code", "OK")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            &w0,
            &w1,
            "pgmcp_worker_grpc_server_duration_seconds_count",
            &[rpc, ("code", "NOT_FOUND")]
        ),
        1.0
    );
    assert_eq!(
        w1.get("pgmcp_worker_pool_connections", &[target]),
        Some(1.0)
    );
    assert_eq!(
        w1.get("pgmcp_worker_pool_max_connections", &[target]),
        Some(1.0)
    );
    assert_eq!(w1.get("pgmcp_worker_pool_waiting", &[target]), Some(0.0));
    assert!(
        w1.get("pgmcp_worker_pool_idle_connections", &[target])
            .is_some()
    );
    assert!(
        w1.get("pgmcp_worker_pool_in_use_connections", &[target])
            .is_some()
    );
    assert_eq!(
        moved(
            &w0,
            &w1,
            "pgmcp_worker_pool_acquire_seconds_count",
            &[target]
        ),
        // Four calls, plus the catalog read behind the failing call's
        // did-you-mean hint.
        5.0
    );
    assert!(
        moved(&w0, &w1, "pgmcp_worker_pool_acquire_seconds_sum", &[target]) > 0.5,
        "the waiter waited"
    );
    assert_eq!(
        moved(
            &w0,
            &w1,
            "pgmcp_worker_query_errors_total",
            &[
                target,
                ("sqlstate_class", "42"),
                ("kind", "undefined_object")
            ]
        ),
        1.0
    );
    assert_eq!(
        moved(&w0, &w1, "pgmcp_worker_rows_returned_total", &[target]),
        5.0
    );
    assert!(moved(&w0, &w1, "pgmcp_worker_bytes_returned_total", &[target]) > 0.0);

    // The worker's metrics server goes away with the worker.
    worker.stop().await?;
    let gone = tokio::net::TcpStream::connect(worker.metrics_addr).await;
    assert!(gone.is_err(), "metrics port still open after stop");
    Ok(())
}

#[tokio::test]
async fn worker_metrics_listen_flag_serves_metrics() -> Result<()> {
    let (_pg, url) = app_db().await?;
    let mut worker = Proc::worker(&url, &["--metrics-listen", "127.0.0.1:0"], &[]).await?;
    let addr = worker
        .logged_addr("metrics at /metrics")
        .ok_or_else(|| anyhow!("no metrics address logged: {:#?}", worker.logs()))?;
    let m = Exposition::scrape(addr).await?;
    assert_eq!(
        m.get("pgmcp_worker_pool_max_connections", &[("target", "app")]),
        Some(10.0)
    );
    assert!(worker.stop().await?.success());
    Ok(())
}

#[tokio::test]
async fn every_mcp_request_gets_a_server_span() -> Result<()> {
    use rmcp::model::ReadResourceRequestParams;
    let (_pg, url) = app_db().await?;
    let otlp = Collector::start().await?;
    let env = otel_env(&otlp, "grpc", "100");
    let (_worker, gateway) = traced_pair(&url, &env, &[]).await?;
    let client = mcp::http_client(&mcp_url(&gateway)).await?;
    client
        .read_resource(ReadResourceRequestParams::new("stats://fleet"))
        .await?;
    client.list_all_resources().await?;
    client.list_all_prompts().await?;
    let wanted = ["resources/read", "resources/list", "prompts/list"];
    let spans = otlp
        .wait_for("the gateway's SERVER spans", WAIT, |s| {
            wanted.iter().all(|w| {
                s.iter().any(|s| {
                    s.name == *w && s.service == "pgmcp-gateway" && s.kind == SpanKind::Server
                })
            })
        })
        .await?;
    let read = spans
        .iter()
        .find(|s| s.name == "resources/read")
        .context("resources/read span")?;
    assert_eq!(read.attr("mcp.method.name"), Some("resources/read"));
    Ok(())
}

/// A line per call is opt-in: without `--log-calls` neither process writes
/// one (the traced tests above and `secrets.rs` turn it on and read it).
#[tokio::test]
async fn per_call_log_lines_are_opt_in() -> Result<()> {
    let (_pg, url) = app_db().await?;
    let mut worker = Proc::worker(&url, &[], &[]).await?;
    let mut gateway = Proc::gateway(&[worker.url()], &[], &[]).await?;
    let client = mcp::http_client(&format!("{}/mcp", gateway.url())).await?;
    for _ in 0..3 {
        let res = mcp::call_tool(&client, "query", json!({"sql": "SELECT 1"})).await?;
        assert!(!is_error(&res), "{}", text(&res));
    }
    client.cancel().await?;
    assert!(gateway.stop().await?.success());
    assert!(worker.stop().await?.success());
    for (name, logs) in [("gateway", gateway.logs()), ("worker", worker.logs())] {
        let per_call: Vec<&String> = logs
            .iter()
            .filter(|l| l.contains("pgmcp::calls") || l.contains("MCP request done"))
            .collect();
        assert!(per_call.is_empty(), "{name}: {per_call:#?}");
        // The process did log (start-up, shutdown): the filter, not silence.
        assert!(!logs.is_empty(), "{name} logged nothing");
    }
    Ok(())
}

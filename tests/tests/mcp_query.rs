//! The `query` tool end to end: MCP client → HTTP → gateway → gRPC → worker → PostgreSQL.

use std::time::{Duration, Instant};

use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use serde_json::json;

const SHOP: &str = r#"
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL), (3, 'Linus', 'linus@example.com');
CREATE SEQUENCE ticket;
CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
CREATE TABLE many AS SELECT g AS n FROM generate_series(1, 500) g;
"#;

#[tokio::test]
async fn tools_list_describes_query() -> anyhow::Result<()> {
    let stack = Stack::start("").await?;
    let tools = stack.client.list_all_tools().await?;
    let query = tools
        .iter()
        .find(|t| t.name == "query")
        .ok_or_else(|| anyhow::anyhow!("no query tool: {tools:?}"))?;
    let schema = serde_json::Value::Object((*query.input_schema).clone());
    assert_eq!(schema["properties"]["sql"]["type"], "string", "{schema}");
    for p in [
        "params",
        "max_rows",
        "page_size",
        "cursor",
        "timeout_ms",
        "database",
    ] {
        assert!(
            schema["properties"].get(p).is_some(),
            "missing {p} in {schema}"
        );
    }
    let ann = query
        .annotations
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no annotations"))?;
    assert_eq!(ann.read_only_hint, Some(true));
    // Every tool: annotations, an output schema, a description for a model.
    for tool in &tools {
        let ann = tool
            .annotations
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{} has no annotations", tool.name))?;
        assert_eq!(ann.open_world_hint, Some(false), "{}", tool.name);
        assert!(
            ann.read_only_hint.is_some() && ann.destructive_hint.is_some(),
            "{}",
            tool.name
        );
        assert!(ann.idempotent_hint.is_some(), "{}", tool.name);
        assert!(
            tool.output_schema.is_some(),
            "{} has no output schema",
            tool.name
        );
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 80),
            "{}",
            tool.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn query_returns_rows_structured_and_as_text() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let res = stack
        .query(json!({"sql": "SELECT id, name, email FROM customers ORDER BY id"}))
        .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(
        s["columns"],
        json!([{"name": "id", "type": "int4"}, {"name": "name", "type": "text"}, {"name": "email", "type": "text"}])
    );
    assert_eq!(
        s["rows"],
        json!([
            [1, "Ada", "ada@example.com"],
            [2, "Grace", null],
            [3, "Linus", "linus@example.com"]
        ])
    );
    assert_eq!(s["row_count"], 3);
    assert_eq!(s["truncated"], false);
    let t = text(&res);
    assert!(
        t.starts_with("id (int4) | name (text) | email (text)\n1 | Ada | ada@example.com\n"),
        "{t}"
    );
    assert!(t.ends_with("(3 rows)"), "{t}");
    Ok(())
}

#[tokio::test]
async fn params_are_bound_with_inferred_types() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let res = stack
        .query(json!({
            "sql": "SELECT name FROM customers WHERE id = $1 OR name = $2 OR id = ANY($3) ORDER BY id",
            "params": [1, "Linus", [2]]
        }))
        .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(
        structured(&res)["rows"],
        json!([["Ada"], ["Grace"], ["Linus"]])
    );

    // Strings for dates, JSON for jsonb, null, booleans, floats, big integers.
    let res = stack
        .query(json!({
            "sql": "SELECT $1::date + 1 AS d, $2::jsonb -> 'k' AS j, $3::int IS NULL AS n, NOT $4 AS b, $5 * 2.0 AS f, $6::numeric + 1 AS big",
            "params": ["2026-01-31", {"k": [1, 2]}, null, false, 1.25, 18446744073709551615u64]
        }))
        .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(
        structured(&res)["rows"],
        json!([[
            "2026-02-01",
            [1, 2],
            true,
            true,
            "2.500",
            "18446744073709551616"
        ]])
    );

    // A value PostgreSQL cannot read as the inferred type is a clear error.
    let res = stack
        .query(json!({"sql": "SELECT * FROM customers WHERE id = $1", "params": ["abc"]}))
        .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("parameter $1"), "{}", text(&res));

    // Wrong number of params.
    let res = stack
        .query(json!({"sql": "SELECT $1::int + $2::int", "params": [1]}))
        .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("2 parameter placeholders but 1 param was given"),
        "{}",
        text(&res)
    );
    Ok(())
}

#[tokio::test]
async fn errors_are_explained_by_category() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT id FORM customers",
            "syntax",
            &["SQL syntax error", "SQLSTATE 42601", "column 16", "^"],
        ),
        (
            "SELECT 1; SELECT 2",
            "syntax",
            &["only one SQL statement per call"],
        ),
        (
            "SELECT * FROM nope",
            "undefined_object",
            &[
                "relation \"nope\" does not exist",
                "42P01",
                "information_schema",
            ],
        ),
        (
            "SELECT nope FROM customers",
            "undefined_object",
            &["column \"nope\" does not exist", "42703"],
        ),
        (
            "SELECT (-1)::positive_int",
            "constraint_violation",
            &["violates check constraint", "23514", "Nothing was changed"],
        ),
        ("SELECT 1/0", "data", &["division by zero", "22012"]),
        ("SELECT 'x' + 1", "data", &["22P02"]),
        (
            "CREATE TABLE t (a int)",
            "read_only",
            &["read-only transaction", "25006", "nothing was changed"],
        ),
        (
            "SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(2)",
            "cancelled",
            &["canceling statement due to user request", "57014"],
        ),
        (
            "SELECT pg_terminate_backend(pg_backend_pid())",
            "connection",
            &["57P01", "Retry"],
        ),
        ("", "invalid_request", &["empty"]),
    ];
    for (sql, kind, needles) in cases {
        let res = stack.query(json!({"sql": sql})).await?;
        assert!(
            is_error(&res),
            "{sql}: expected an error, got {}",
            text(&res)
        );
        let s = structured(&res);
        assert_eq!(s["error"]["kind"], *kind, "{sql}: {s}");
        let t = text(&res);
        for n in *needles {
            assert!(t.contains(n), "{sql}: `{n}` missing from:\n{t}");
        }
    }
    // After a killed backend the pool still serves.
    let res = stack
        .query(json!({"sql": "SELECT count(*) FROM customers"}))
        .await?;
    assert_eq!(structured(&res)["rows"], json!([[3]]), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn permission_denied_is_explained() -> anyhow::Result<()> {
    let pg = pgmcp_tests::Pg::start()?;
    pg.create_db("app").await?;
    pg.exec_as_superuser("app", "CREATE ROLE reader LOGIN; CREATE TABLE secret (x int); CREATE TABLE open (x int); GRANT SELECT ON open TO reader;")
        .await?;
    let url = pg.role_url("reader", "app");
    let worker = pgmcp_tests::worker::InProcessWorker::start(&["--database-url", &url]).await?;
    let gateway = pgmcp_tests::gateway::InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;
    let res = mcp::call_tool(&client, "query", json!({"sql": "SELECT * FROM secret"})).await?;
    mcp::assert_tool_error(
        &res,
        "permission_denied",
        "permission denied for table secret",
    );
    assert!(text(&res).contains("GRANT"), "{}", text(&res));
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT count(*) FROM open"}),
    )
    .await?;
    assert_eq!(structured(&res)["rows"], json!([[0]]), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn writes_through_query_are_stopped_by_postgres_and_leave_no_trace() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let writes = [
        "INSERT INTO customers VALUES (4, 'Mallory', NULL)",
        "UPDATE customers SET name = 'x'",
        "DELETE FROM customers",
        "WITH d AS (DELETE FROM customers RETURNING *) SELECT count(*) FROM d",
        "SELECT nextval('ticket')",
        "DROP TABLE customers",
        "CREATE TABLE t (a int)",
    ];
    for sql in writes {
        let res = stack.query(json!({"sql": sql})).await?;
        assert!(is_error(&res), "{sql} was not refused: {}", text(&res));
        assert_eq!(
            structured(&res)["error"]["kind"],
            "read_only",
            "{sql}: {}",
            text(&res)
        );
    }
    // Statement stacking is impossible: one statement per call.
    let res = stack
        .query(json!({"sql": "COMMIT; INSERT INTO customers VALUES (5, 'Eve', NULL)"}))
        .await?;
    assert!(is_error(&res));

    let names = stack
        .pg
        .column(
            "app",
            "SELECT string_agg(name, ',' ORDER BY id) FROM customers",
        )
        .await?;
    assert_eq!(names, vec![Some("Ada,Grace,Linus".to_string())]);
    let seq = stack
        .pg
        .column(
            "app",
            "SELECT last_value::text || is_called::text FROM ticket",
        )
        .await?;
    assert_eq!(seq, vec![Some("1false".to_string())]);
    let tables = stack
        .pg
        .column(
            "app",
            "SELECT count(*)::text FROM pg_tables WHERE tablename = 't'",
        )
        .await?;
    assert_eq!(tables, vec![Some("0".to_string())]);
    Ok(())
}

#[tokio::test]
async fn max_rows_truncation_is_explicit() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let res = stack
        .query(json!({"sql": "SELECT n FROM many ORDER BY n", "max_rows": 10}))
        .await?;
    let s = structured(&res);
    assert_eq!(s["row_count"], 10);
    assert_eq!(s["rows"].as_array().map(Vec::len), Some(10));
    assert_eq!(s["truncated"], true);
    assert_eq!(s["truncation"]["reason"], "max_rows");
    assert!(text(&res).contains("more rows exist"), "{}", text(&res));
    assert!(s["next_cursor"].is_string(), "{s}");

    // The default cap applies too, and exactly max_rows rows is not truncated.
    let res = stack.query(json!({"sql": "SELECT n FROM many"})).await?;
    assert_eq!(structured(&res)["row_count"], 100);
    assert_eq!(structured(&res)["truncated"], true);
    let res = stack
        .query(json!({"sql": "SELECT n FROM many WHERE n <= 10", "max_rows": 10}))
        .await?;
    assert_eq!(structured(&res)["truncated"], false);

    // Over the gateway's cap: a clear error, not a silent clamp.
    let res = stack
        .query(json!({"sql": "SELECT 1", "max_rows": 1_000_000}))
        .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("over the limit of 10000"),
        "{}",
        text(&res)
    );

    // A truncated huge result does not keep the database busy.
    let started = Instant::now();
    let res = stack
        .query(json!({"sql": "SELECT g, repeat('x', 100) FROM generate_series(1, 50000000) g", "max_rows": 5}))
        .await?;
    assert_eq!(structured(&res)["truncated"], true, "{}", text(&res));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn timeouts_stop_the_statement_in_the_database() -> anyhow::Result<()> {
    let stack = Stack::start("").await?;
    let started = Instant::now();
    let res = stack
        .query(json!({"sql": "SELECT pg_sleep(30)", "timeout_ms": 300}))
        .await?;
    assert!(is_error(&res));
    assert_eq!(
        structured(&res)["error"]["kind"],
        "timeout",
        "{}",
        text(&res)
    );
    assert!(text(&res).contains("statement timeout"), "{}", text(&res));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let active = stack
        .pg
        .column(
            "app",
            "SELECT count(*)::text FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
        )
        .await?;
    assert_eq!(active, vec![Some("0".to_string())]);
    Ok(())
}

#[tokio::test]
async fn pool_exhaustion_is_explained() -> anyhow::Result<()> {
    let stack = Stack::start_with(
        "",
        &[
            "--pool-max-connections",
            "1",
            "--pool-min-connections",
            "1",
            "--pool-acquire-timeout-ms",
            "300",
            // Admit more calls than connections, so the second one waits for
            // the pool rather than being refused as overloaded.
            "--max-concurrent-calls",
            "2",
        ],
        &[],
    )
    .await?;
    let slow = stack.query(json!({"sql": "SELECT pg_sleep(2)"}));
    let fast = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.query(json!({"sql": "SELECT 1"})).await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(!is_error(&slow?));
    let fast = fast?;
    assert!(is_error(&fast));
    assert_eq!(
        structured(&fast)["error"]["kind"],
        "pool_exhausted",
        "{}",
        text(&fast)
    );
    assert!(text(&fast).contains("Retry"), "{}", text(&fast));
    Ok(())
}

#[tokio::test]
async fn worker_down_gives_a_quick_clear_error() -> anyhow::Result<()> {
    let mut stack = Stack::start("").await?;
    stack.worker.stop().await?;
    let started = Instant::now();
    let res = stack.query(json!({"sql": "SELECT 1"})).await?;
    assert!(is_error(&res));
    assert_eq!(
        structured(&res)["error"]["kind"],
        "unavailable",
        "{}",
        text(&res)
    );
    assert!(
        text(&res).contains("no worker could be reached"),
        "{}",
        text(&res)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let (status, _) =
        pgmcp_tests::gateway::http_get(stack.gateway.addr, "/readyz", "127.0.0.1").await?;
    assert_eq!(status, 503);
    let (status, _) =
        pgmcp_tests::gateway::http_get(stack.gateway.addr, "/healthz", "127.0.0.1").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn probes_and_host_check() -> anyhow::Result<()> {
    let stack = Stack::start("").await?;
    let addr = stack.gateway.addr;
    assert_eq!(
        pgmcp_tests::gateway::http_get(addr, "/healthz", "127.0.0.1")
            .await?
            .0,
        200
    );
    assert_eq!(
        pgmcp_tests::gateway::http_get(addr, "/readyz", "127.0.0.1")
            .await?
            .0,
        200
    );
    // A foreign Host on /mcp is refused (DNS-rebinding protection).
    let (status, _) = pgmcp_tests::gateway::http_get(addr, "/mcp", "evil.example").await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn older_and_newer_protocol_versions_both_work() -> anyhow::Result<()> {
    use rmcp::model::ProtocolVersion;
    let stack = Stack::start(SHOP).await?;
    for version in [
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ] {
        let client =
            mcp::http_client_with_version(&stack.gateway.mcp_url(), version.clone()).await?;
        let res = mcp::call_tool(
            &client,
            "query",
            json!({"sql": "SELECT count(*) FROM customers"}),
        )
        .await?;
        assert_eq!(
            structured(&res)["rows"],
            json!([[3]]),
            "{version}: {}",
            text(&res)
        );
    }
    Ok(())
}

#[tokio::test]
async fn bad_arguments_are_tool_errors() -> anyhow::Result<()> {
    let stack = Stack::start("").await?;
    let res = stack.query(json!({"sql": 5})).await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("invalid arguments"), "{}", text(&res));
    let res = stack.query(json!({"sql": "SELECT 1", "bogus": 1})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("unknown field `bogus`"),
        "{}",
        text(&res)
    );
    let res = stack
        .query(json!({"sql": "SELECT 1", "database": "nope"}))
        .await?;
    mcp::assert_tool_error(&res, "unknown_database", "available: app");
    Ok(())
}

#[tokio::test]
async fn every_type_comes_back_exactly_through_mcp() -> anyhow::Result<()> {
    use pgmcp_tests::types_fixture::{SELECT_SQL, SETUP_SQL, columns, expected_rows};
    let stack = Stack::start(SETUP_SQL).await?;
    let res = stack.query(json!({"sql": SELECT_SQL})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    let names: Vec<&str> = s["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, columns());
    let want = expected_rows();
    let got = s["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), want.len());
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        for (c, name) in names.iter().enumerate() {
            assert_eq!(g[c], w[c], "row {r}, column {name}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn column_types_are_catalog_names() -> anyhow::Result<()> {
    let stack = Stack::start(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN code AS varchar(5);",
    )
    .await?;
    let res = stack
        .query(json!({"sql": "SELECT 'a'::char(2) AS a, 'b'::\"char\" AS b, ARRAY[1] AS c, 'happy'::mood AS d, ARRAY['sad'::mood] AS e, 'x'::code AS f, now() AS g"}))
        .await?;
    let types: Vec<String> = structured(&res)["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        types,
        [
            "bpchar",
            "char",
            "int4[]",
            "mood",
            "mood[]",
            "varchar",
            "timestamptz"
        ],
        "{}",
        text(&res)
    );
    Ok(())
}

#[tokio::test]
async fn lock_waits_end_at_the_calls_timeout() -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let stack = Stack::start_with(SHOP, &["--mode", "read-write"], &[]).await?;
    // Another session holds a row lock and a table lock until the end.
    let mut holder = sqlx::PgConnection::connect(&stack.pg.owner_url("app")).await?;
    holder
        .execute(
            "BEGIN; SELECT * FROM customers WHERE id = 1 FOR UPDATE; \
             LOCK TABLE many IN ACCESS EXCLUSIVE MODE",
        )
        .await?;
    for (tool, sql) in [
        (
            "execute",
            "UPDATE customers SET name = 'Blocked' WHERE id = 1",
        ),
        ("query", "SELECT count(*) FROM many"),
    ] {
        let started = Instant::now();
        let res =
            mcp::call_tool(&stack.client, tool, json!({"sql": sql, "timeout_ms": 500})).await?;
        let took = started.elapsed();
        mcp::assert_tool_error(&res, "timeout", "timeout");
        assert!(
            text(&res).contains("canceling statement due to"),
            "{tool}: {}",
            text(&res)
        );
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(5),
            "{tool}: took {took:?}"
        );
        // The statement stopped waiting in the database too.
        let waiting = stack
            .pg
            .column(
                "app",
                "SELECT count(*)::text FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND backend_type = 'client backend'",
            )
            .await?;
        assert_eq!(waiting, vec![Some("0".to_string())], "{tool}");
    }
    holder.execute("ROLLBACK").await?;
    let name = stack
        .pg
        .column("app", "SELECT name FROM customers WHERE id = 1")
        .await?;
    assert_eq!(name, vec![Some("Ada".to_string())]);
    // With the locks gone the same calls go through.
    let res = mcp::call_tool(
        &stack.client,
        "query",
        json!({"sql": "SELECT count(*) FROM many", "timeout_ms": 500}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn timeouts_above_the_maximum_are_refused_by_the_gateway_and_capped_by_the_worker()
-> anyhow::Result<()> {
    // As documented (README, docs/security.md): the gateway refuses a
    // `timeout_ms` over --max-timeout-ms, naming the limit; a worker caps a
    // call's timeout at its --max-statement-timeout-ms.
    let stack = Stack::start_with(
        "CREATE TABLE t (x int)",
        &[
            "--mode",
            "read-write",
            "--statement-timeout-ms",
            "1000",
            "--max-statement-timeout-ms",
            "1000",
        ],
        &["--max-timeout-ms", "4000"],
    )
    .await?;
    for (tool, args) in [
        ("query", json!({"sql": "SELECT 1", "timeout_ms": 4001})),
        (
            "execute",
            json!({"sql": "INSERT INTO t VALUES (1)", "timeout_ms": 60000}),
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "INSERT INTO t VALUES (2)"}], "timeout_ms": 4001}),
        ),
        (
            "batch_query",
            json!({"queries": [{"sql": "SELECT 1"}], "timeout_ms": 4001}),
        ),
    ] {
        let res = mcp::call_tool(&stack.client, tool, args).await?;
        mcp::assert_tool_error(
            &res,
            "invalid_request",
            "over the limit of 4000 ms (--max-timeout-ms)",
        );
        assert!(text(&res).contains("timeout_ms"), "{tool}: {}", text(&res));
    }
    let written = stack
        .pg
        .column("app", "SELECT count(*)::text FROM t")
        .await?;
    assert_eq!(written, vec![Some("0".to_string())]);
    // At the gateway's maximum, the worker's smaller cap applies.
    let started = Instant::now();
    let res = stack
        .query(json!({"sql": "SELECT pg_sleep(3)", "timeout_ms": 4000}))
        .await?;
    mcp::assert_tool_error(&res, "timeout", "statement timeout");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

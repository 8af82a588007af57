//! `execute`, `transaction`, `batch_query`, `explain`, `bulk_insert` and
//! `query` paging, end to end against a real PostgreSQL: results and errors
//! against each tool's outputSchema, annotations, batch concurrency,
//! retryable conflicts, and cursors (tampered, foreign, expired).

use std::time::{Duration, Instant};

use anyhow::Context;
use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, assert_valid_output, is_error, structured, text};
use pgmcp_tests::procs::Proc;
use serde_json::json;

const SHOP: &str = r#"
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0));
INSERT INTO items VALUES (1, 'tea', 10), (2, 'coffee', 5);
CREATE TABLE people (id int PRIMARY KEY, name text, tags text[], extra jsonb);
CREATE TABLE "Mixed Case" (n int);
CREATE TABLE numbers AS SELECT g AS n FROM generate_series(1, 10000) g;
"#;

async fn read_write() -> anyhow::Result<Stack> {
    Stack::start_with(SHOP, &["--mode", "read-write"], &[]).await
}

async fn count(stack: &Stack, table: &str) -> anyhow::Result<String> {
    let v = stack
        .pg
        .column("app", &format!("SELECT count(*)::text FROM {table}"))
        .await?;
    Ok(v.into_iter().next().flatten().unwrap_or_default())
}

#[tokio::test]
async fn execute_writes_and_returns_rows() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    let res = mcp::call_tool(c, "execute", json!({"sql": "INSERT INTO items VALUES ($1, $2, $3) RETURNING id, name", "params": [3, "cocoa", 7]})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(structured(&res)["rows_affected"], 1);
    assert_eq!(structured(&res)["rows"], json!([[3, "cocoa"]]));
    let res = mcp::call_tool(
        c,
        "execute",
        json!({"sql": "UPDATE items SET qty = qty + 1"}),
    )
    .await?;
    assert_eq!(structured(&res)["rows_affected"], 3, "{}", text(&res));
    assert!(text(&res).contains("3 rows affected"), "{}", text(&res));
    let res = mcp::call_tool(c, "execute", json!({"sql": "CREATE TABLE made (x int)"})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(count(&stack, "made").await?, "0");
    // Constraint violations are explained and change nothing.
    let res = mcp::call_tool(
        c,
        "execute",
        json!({"sql": "UPDATE items SET qty = -1 WHERE id = 1"}),
    )
    .await?;
    assert!(is_error(&res));
    assert_eq!(
        structured(&res)["error"]["kind"],
        "constraint_violation",
        "{}",
        text(&res)
    );
    assert!(text(&res).contains("items_qty_check"), "{}", text(&res));
    let qty = stack
        .pg
        .column("app", "SELECT qty::text FROM items WHERE id = 1")
        .await?;
    assert_eq!(qty, vec![Some("11".to_string())]);
    // Each kind of constraint gets its own next step.
    stack
        .pg
        .exec(
            "app",
            "CREATE TABLE orders (id int PRIMARY KEY, item int NOT NULL REFERENCES items(id))",
        )
        .await?;
    for (sql, needles) in [
        (
            "INSERT INTO items VALUES (1, 'again', 1)",
            ["23505", "already exists", "ON CONFLICT"],
        ),
        (
            "INSERT INTO orders VALUES (1, 99)",
            ["23503", "referenced row", "orders_item_fkey"],
        ),
        (
            "INSERT INTO orders VALUES (2, NULL)",
            ["23502", "column `item` cannot be NULL", "Provide a value"],
        ),
    ] {
        let res = mcp::call_tool(c, "execute", json!({"sql": sql})).await?;
        assert_eq!(
            structured(&res)["error"]["kind"],
            "constraint_violation",
            "{sql}"
        );
        for n in needles {
            assert!(
                text(&res).contains(n),
                "{sql}: `{n}` missing from {}",
                text(&res)
            );
        }
    }
    // One statement per call.
    let res = mcp::call_tool(
        c,
        "execute",
        json!({"sql": "DELETE FROM items; DELETE FROM people"}),
    )
    .await?;
    assert!(is_error(&res));
    assert_eq!(count(&stack, "items").await?, "3");
    Ok(())
}

#[tokio::test]
async fn writes_on_a_read_only_database_are_refused_with_directions() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let c = &stack.client;
    for (tool, args) in [
        ("execute", json!({"sql": "DELETE FROM items"})),
        (
            "bulk_insert",
            json!({"table": "items", "columns": ["id", "name", "qty"], "rows": [[9, "x", 1]]}),
        ),
    ] {
        let res = mcp::call_tool(c, tool, args).await?;
        assert!(is_error(&res), "{tool}: {}", text(&res));
        assert_eq!(structured(&res)["error"]["kind"], "read_only", "{tool}");
        assert!(
            text(&res).contains("database `app` is read-only"),
            "{}",
            text(&res)
        );
        assert!(
            text(&res).contains("--mode app=read-write"),
            "{}",
            text(&res)
        );
    }
    // A transaction on a read-only database runs read-only and is rolled back.
    let res = mcp::call_tool(
        c,
        "transaction",
        json!({"statements": [{"sql": "SELECT count(*) FROM items"}]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(structured(&res)["committed"], false);
    let res = mcp::call_tool(
        c,
        "transaction",
        json!({"statements": [{"sql": "DELETE FROM items"}]}),
    )
    .await?;
    assert_eq!(
        structured(&res)["error"]["kind"],
        "read_only",
        "{}",
        text(&res)
    );
    assert_eq!(count(&stack, "items").await?, "2");
    Ok(())
}

#[tokio::test]
async fn transactions_are_all_or_nothing() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    let res = mcp::call_tool(
        c,
        "transaction",
        json!({"statements": [
            {"sql": "UPDATE items SET qty = qty - $1 WHERE id = 1", "params": [3]},
            {"sql": "INSERT INTO items VALUES (3, 'cocoa', $1) RETURNING id", "params": [3]},
        ]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["committed"], true);
    assert_eq!(s["results"][0]["rows_affected"], 1);
    assert_eq!(s["results"][1]["rows"], json!([[3]]));

    // The last statement fails: nothing of the earlier ones stays.
    let res = mcp::call_tool(
        c,
        "transaction",
        json!({"statements": [
            {"sql": "DELETE FROM items WHERE id = 3"},
            {"sql": "UPDATE items SET qty = 0"},
            {"sql": "INSERT INTO items VALUES (1, 'dup', 1)"},
        ]}),
    )
    .await?;
    assert!(is_error(&res));
    let t = text(&res);
    assert!(t.contains("statement 3 of 3 failed"), "{t}");
    assert!(t.contains("nothing was committed"), "{t}");
    assert_eq!(
        structured(&res)["error"]["kind"],
        "constraint_violation",
        "{t}"
    );
    let all = stack
        .pg
        .column(
            "app",
            "SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM items",
        )
        .await?;
    assert_eq!(all, vec![Some("1:7,2:5,3:3".to_string())]);
    Ok(())
}

#[tokio::test]
async fn batch_query_keeps_order_and_isolates_failures() -> anyhow::Result<()> {
    let stack = Stack::start(SHOP).await?;
    let res = mcp::call_tool(
        &stack.client,
        "batch_query",
        json!({"queries": [
            {"sql": "SELECT count(*) FROM items"},
            {"sql": "SELECT * FROM missing"},
            {"sql": "SELECT name FROM items WHERE id = $1", "params": [2]},
            {"sql": "DELETE FROM items"},
        ]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["failed"], 2);
    assert_eq!(s["results"][0]["rows"], json!([[2]]));
    assert_eq!(s["results"][1]["ok"], false);
    assert_eq!(s["results"][1]["error"]["kind"], "undefined_object");
    assert_eq!(s["results"][2]["rows"], json!([["coffee"]]));
    assert_eq!(s["results"][3]["error"]["kind"], "read_only");
    assert_eq!(count(&stack, "items").await?, "2");
    Ok(())
}

#[tokio::test]
async fn explain_reports_plans_and_analyze_cannot_write() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    let res = mcp::call_tool(
        c,
        "explain",
        json!({"sql": "SELECT * FROM items WHERE id = $1", "params": [1]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert!(
        s["summary"]["total_cost"].as_f64().is_some_and(|c| c > 0.0),
        "{s}"
    );
    assert!(s["plan"][0]["Plan"]["Node Type"].is_string(), "{s}");
    assert_eq!(s["summary"]["analyzed"], false);

    let res = mcp::call_tool(
        c,
        "explain",
        json!({"sql": "SELECT count(*) FROM numbers", "analyze": true, "buffers": true}),
    )
    .await?;
    let s = structured(&res);
    assert_eq!(s["summary"]["analyzed"], true, "{}", text(&res));
    assert_eq!(s["summary"]["actual_rows"], 1.0);
    assert!(s["summary"]["execution_time_ms"].as_f64().is_some(), "{s}");

    // ANALYZE runs the statement, read-only: even on a read-write database it cannot write.
    let res = mcp::call_tool(
        c,
        "explain",
        json!({"sql": "DELETE FROM items", "analyze": true}),
    )
    .await?;
    assert!(is_error(&res));
    assert_eq!(
        structured(&res)["error"]["kind"],
        "read_only",
        "{}",
        text(&res)
    );
    assert_eq!(count(&stack, "items").await?, "2");

    // Errors point into the caller's SQL, not the EXPLAIN wrapper.
    let res = mcp::call_tool(c, "explain", json!({"sql": "SELECT nope FROM items"})).await?;
    assert_eq!(structured(&res)["error"]["position"], 8, "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn bulk_insert_loads_100k_rows_or_nothing() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    let rows: Vec<serde_json::Value> = (1..=100_000).map(|i| json!([i, format!("p{i}")])).collect();
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "people", "columns": ["id", "name"], "rows": rows}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(structured(&res)["rows_inserted"], 100_000);
    assert_eq!(count(&stack, "people").await?, "100000");

    // Objects, arrays for array columns, JSON for jsonb, awkward text.
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "public.people", "rows": [
            {"id": -1, "name": "tab\there \\ and\nnewline", "tags": ["a", "b c"], "extra": {"k": [1, 2]}},
            {"id": -2, "name": null},
        ]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let got = stack
        .pg
        .column("app", "SELECT name || '|' || array_to_string(tags, ';') || '|' || (extra->'k')::text FROM people WHERE id = -1")
        .await?;
    assert_eq!(
        got,
        vec![Some("tab\there \\ and\nnewline|a;b c|[1, 2]".to_string())]
    );

    // Bad data in row 3 of 4: the error names the row and nothing is inserted.
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "items", "columns": ["id", "name", "qty"], "rows": [[10, "a", 1], [11, "b", 2], [12, "c", "lots"], [13, "d", 4]]}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("row 3"), "{}", text(&res));
    assert_eq!(count(&stack, "items").await?, "2");

    // Names: quoted mixed case works; unknown tables and columns, and
    // injection attempts, are clear errors.
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "\"Mixed Case\"", "columns": ["n"], "rows": [[1]]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "items; DROP TABLE items", "columns": ["id"], "rows": [[1]]}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("not a valid table name") || text(&res).contains("does not exist"),
        "{}",
        text(&res)
    );
    let res = mcp::call_tool(
        c,
        "bulk_insert",
        json!({"table": "items", "columns": ["id", "nope"], "rows": [[1, 2]]}),
    )
    .await?;
    assert!(
        text(&res).contains("has no column `nope`"),
        "{}",
        text(&res)
    );
    assert_eq!(count(&stack, "items").await?, "2");
    Ok(())
}

#[tokio::test]
async fn paging_through_10000_rows_across_two_gateways() -> anyhow::Result<()> {
    // Two gateway processes sharing one cursor key, read from a file as a
    // mounted Secret would be, in front of one worker process.
    let pg = pgmcp_tests::Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec("app", SHOP).await?;
    let worker = Proc::worker(&url, &[], &[]).await?;
    let dir = tempfile::tempdir()?;
    let secret_file = dir.path().join("cursor-secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n")?;
    let secret_path = secret_file.to_string_lossy().to_string();
    let env = [("PGMCP_CURSOR_SECRET_FILE", secret_path.as_str())];
    let one = Proc::gateway(&[worker.url()], &[], &env).await?;
    let two = Proc::gateway(&[worker.url()], &[], &env).await?;
    let one_client = mcp::http_client(&format!("{}/mcp", one.url())).await?;
    let two_client = mcp::http_client(&format!("{}/mcp", two.url())).await?;
    let clients = [&one_client, &two_client];

    let mut seen = Vec::new();
    let mut args = json!({"sql": "SELECT n FROM numbers ORDER BY n", "page_size": 1000});
    let mut cursors = Vec::new();
    for page in 0..20 {
        let res = mcp::call_tool(clients[page % 2], "query", args.clone()).await?;
        assert!(!is_error(&res), "page {page}: {}", text(&res));
        let s = structured(&res);
        assert_eq!(s["offset"], seen.len());
        for row in s["rows"].as_array().cloned().unwrap_or_default() {
            seen.push(row[0].as_i64().unwrap_or(-1));
        }
        match s["next_cursor"].as_str() {
            Some(c) => {
                cursors.push(c.to_string());
                args = json!({"cursor": c});
            }
            None => break,
        }
    }
    assert_eq!(seen, (1..=10_000).collect::<Vec<i64>>());
    assert_eq!(cursors.len(), 9);

    // A tampered cursor, a cursor for another query, and a foreign key's cursor are refused.
    let good = &cursors[0];
    let tampered = format!("{}A{}", &good[..10], &good[11..]);
    for (args, needle) in [
        (json!({"cursor": tampered}), "invalid cursor"),
        (
            json!({"cursor": good, "sql": "SELECT 1"}),
            "different query",
        ),
    ] {
        let res = mcp::call_tool(&two_client, "query", args).await?;
        assert!(is_error(&res));
        assert!(text(&res).contains(needle), "{}", text(&res));
    }
    let stranger = Proc::gateway(
        &[worker.url()],
        &["--cursor-secret", "another-key-another-key-another"],
        &[],
    )
    .await?;
    let stranger_client = mcp::http_client(&format!("{}/mcp", stranger.url())).await?;
    let res = mcp::call_tool(&stranger_client, "query", json!({"cursor": good})).await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("invalid cursor"), "{}", text(&res));
    Ok(())
}

/// Every result of the SQL tools, and every kind of error they return
/// (from the gateway's own checks, from PostgreSQL, and per item of a
/// batch), validates against the outputSchema the tool advertises.
#[tokio::test]
async fn sql_tool_results_and_errors_match_their_output_schemas() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    let tools = c.list_all_tools().await?;
    let cases = [
        (
            "query",
            json!({"sql": "SELECT id, name FROM items ORDER BY id"}),
            false,
        ),
        (
            "query",
            json!({"sql": "SELECT n FROM numbers", "page_size": 10}),
            false,
        ),
        ("query", json!({"sql": "SELECT * FROM missing"}), true),
        ("query", json!({"sql": "SELECT 1", "bogus": 1}), true),
        (
            "execute",
            json!({"sql": "INSERT INTO items VALUES ($1, $2, $3) RETURNING *", "params": [3, "cocoa", 1]}),
            false,
        ),
        (
            "execute",
            json!({"sql": "CREATE TABLE made (x int)"}),
            false,
        ),
        (
            "execute",
            json!({"sql": "INSERT INTO items VALUES (1, 'dup', 1)"}),
            true,
        ),
        ("execute", json!({"sql": "SELEC 1"}), true),
        (
            "transaction",
            json!({"statements": [
                {"sql": "UPDATE items SET qty = qty + 1 WHERE id = $1", "params": [1]},
                {"sql": "SELECT name FROM items ORDER BY id"},
            ]}),
            false,
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "DELETE FROM items"}, {"sql": "INSERT INTO nope VALUES (1)"}]}),
            true,
        ),
        ("transaction", json!({"statements": []}), true),
        (
            "batch_query",
            json!({"queries": [{"sql": "SELECT count(*) FROM items"}, {"sql": "SELECT * FROM missing"}]}),
            false,
        ),
        ("batch_query", json!({"queries": "not a list"}), true),
        (
            "explain",
            json!({"sql": "SELECT * FROM items WHERE id = $1", "params": [1]}),
            false,
        ),
        (
            "explain",
            json!({"sql": "SELECT count(*) FROM numbers", "analyze": true, "buffers": true}),
            false,
        ),
        ("explain", json!({"sql": "SELECT nope FROM items"}), true),
        (
            "bulk_insert",
            json!({"table": "people", "rows": [{"id": 1, "name": "ada", "tags": ["x"]}]}),
            false,
        ),
        (
            "bulk_insert",
            json!({"table": "items", "columns": ["id", "name", "qty"], "rows": [[10, "a", "lots"]]}),
            true,
        ),
        (
            "bulk_insert",
            json!({"table": "missing", "rows": [[1]]}),
            true,
        ),
    ];
    for (tool, args, fails) in cases {
        let res = mcp::call_tool(c, tool, args.clone()).await?;
        assert_eq!(is_error(&res), fails, "{tool} {args}: {}", text(&res));
        if fails {
            assert!(
                structured(&res)["error"]["kind"].is_string(),
                "{tool} {args}: {}",
                text(&res)
            );
        }
        let def = tools
            .iter()
            .find(|t| t.name == tool)
            .with_context(|| format!("{tool} not listed"))?;
        assert_valid_output(def, &res).with_context(|| format!("{tool} {args}"))?;
    }
    Ok(())
}

/// Tools that change the database say so; the others promise to read only.
#[tokio::test]
async fn tools_are_annotated_by_whether_they_change_the_database() -> anyhow::Result<()> {
    let stack = Stack::start_with("", &[], &["--toolsets", "all"]).await?;
    let tools = stack.client.list_all_tools().await?;
    let annotations = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.annotations.clone())
            .with_context(|| format!("{name}: not listed, or no annotations"))
    };
    for name in ["execute", "transaction", "bulk_insert"] {
        let ann = annotations(name)?;
        assert_eq!(ann.read_only_hint, Some(false), "{name}");
        assert_eq!(ann.destructive_hint, Some(true), "{name}");
        assert_eq!(ann.idempotent_hint, Some(false), "{name}");
        assert_eq!(ann.open_world_hint, Some(false), "{name}");
    }
    for name in [
        "query",
        "batch_query",
        "explain",
        "list_schemas",
        "list_tables",
        "describe_table",
        "list_databases",
        "fleet_status",
        "database_health",
        "top_queries",
        "invalidate_schema_cache",
    ] {
        let ann = annotations(name)?;
        assert_eq!(ann.read_only_hint, Some(true), "{name}");
        assert_eq!(ann.destructive_hint, Some(false), "{name}");
        assert_eq!(ann.idempotent_hint, Some(true), "{name}");
        assert_eq!(ann.open_world_hint, Some(false), "{name}");
    }
    Ok(())
}

/// The queries of a batch run at the same time (4 at once by default,
/// `--batch-concurrency`): four one-second sleeps take about one second,
/// well under the four seconds they would take one after another.
#[tokio::test]
async fn batch_query_runs_its_queries_concurrently() -> anyhow::Result<()> {
    let stack = Stack::start("").await?;
    let queries: Vec<_> = (1..=4)
        .map(|i| json!({"sql": format!("SELECT {i} FROM pg_sleep(1)")}))
        .collect();
    let started = Instant::now();
    let res = mcp::call_tool(&stack.client, "batch_query", json!({"queries": queries})).await?;
    let took = started.elapsed();
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["failed"], 0, "{s}");
    for i in 0..4 {
        assert_eq!(s["results"][i]["rows"], json!([[i + 1]]), "{s}");
    }
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(
        took < Duration::from_secs(2),
        "4 × 1 s took {took:?}: the queries did not run concurrently"
    );
    Ok(())
}

/// Two transactions that lock the same two rows in opposite order
/// deadlock; PostgreSQL aborts one (after deadlock_timeout, 1 s), which
/// comes back as a `conflict` that is safe to retry, while the other
/// commits.
#[tokio::test]
async fn deadlocks_are_conflicts_that_are_safe_to_retry() -> anyhow::Result<()> {
    let stack = read_write().await?;
    let c = &stack.client;
    // Each locks its first row, waits long enough for the other to lock
    // its own, then asks for the other's row.
    let tx = |first: i32, second: i32| {
        mcp::call_tool(
            c,
            "transaction",
            json!({"statements": [
                {"sql": "UPDATE items SET qty = qty + 1 WHERE id = $1", "params": [first]},
                {"sql": "SELECT pg_sleep(1)"},
                {"sql": "UPDATE items SET qty = qty + 1 WHERE id = $1", "params": [second]},
            ]}),
        )
    };
    let (a, b) = tokio::join!(tx(1, 2), tx(2, 1));
    let (a, b) = (a?, b?);
    let (failed, committed) = match (is_error(&a), is_error(&b)) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        _ => anyhow::bail!(
            "expected exactly one to fail:\n{}\n---\n{}",
            text(&a),
            text(&b)
        ),
    };
    assert_eq!(structured(&committed)["committed"], true);
    mcp::assert_tool_error(&failed, "conflict", "it is safe to retry");
    let err = &structured(&failed)["error"];
    assert_eq!(err["retry_safe"], true, "{err}");
    assert_eq!(err["sqlstate"], "40P01", "{err}");
    let t = text(&failed);
    assert!(t.contains("statement 3 of 3 failed"), "{t}");
    assert!(t.contains("nothing was committed"), "{t}");
    // Only the committed one's updates are there: each row went up by one.
    let qty = stack
        .pg
        .column(
            "app",
            "SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM items",
        )
        .await?;
    assert_eq!(qty, vec![Some("1:11,2:6".to_string())]);
    // Retrying the failed one succeeds.
    let again = tx(1, 2).await?;
    assert_eq!(structured(&again)["committed"], true, "{}", text(&again));
    Ok(())
}

/// A cursor outlives its TTL (`--cursor-ttl-s`) only as a clear error that
/// says how to start over.
#[tokio::test]
async fn an_expired_cursor_is_refused_with_directions() -> anyhow::Result<()> {
    let stack = Stack::start_with(SHOP, &[], &["--cursor-ttl-s", "1"]).await?;
    let res = stack
        .query(json!({"sql": "SELECT n FROM numbers ORDER BY n", "page_size": 10}))
        .await?;
    let cursor = structured(&res)["next_cursor"]
        .as_str()
        .with_context(|| text(&res))?
        .to_string();
    // Still valid at once.
    let res = stack.query(json!({"cursor": cursor})).await?;
    assert_eq!(structured(&res)["rows"][0], json!([11]), "{}", text(&res));
    // Expiry is checked in whole seconds: past 2 s it has surely expired.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let res = stack.query(json!({"cursor": cursor})).await?;
    mcp::assert_tool_error(
        &res,
        "invalid_request",
        "the cursor has expired; run the query again without a cursor to start over",
    );
    assert_eq!(structured(&res)["error"]["retry_safe"], false);
    Ok(())
}

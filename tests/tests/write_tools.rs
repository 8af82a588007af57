//! `execute`, `transaction`, `batch_query`, `explain`, `bulk_insert` and
//! `query` paging, end to end against a real PostgreSQL.

use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, is_error, structured, text};
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

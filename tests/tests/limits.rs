//! Limits the gateway and the worker enforce, each with an error naming the
//! limit and its value: concurrent calls per principal, the worker's
//! admission limit, SQL size and parameter count at the gateway (for every
//! tool that carries SQL), statements per `transaction`, queries per
//! `batch_query` and rows per `bulk_insert`, and the gRPC
//! message size in both directions. (The HTTP body limit is in
//! `gateway_http.rs`; the worker's own SQL and row limits in `worker_query.rs`.)

use std::time::Duration;

use anyhow::{Context, Result};
use pgmcp_tests::Stack;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::worker::{InProcessWorker, query, sql};
use serde_json::json;
use tonic::Code;

#[tokio::test]
async fn concurrent_calls_are_limited_per_principal() -> Result<()> {
    let stack = Stack::start("").await?;
    let gateway = InProcessGateway::start(
        &[stack.worker.url()],
        &[
            "--auth-tokens",
            "alice read tok-alice-0123456789abcdef; bob read tok-bob-0123456789abcdef",
            "--max-concurrent-calls-per-principal",
            "1",
        ],
    )
    .await?;
    let alice =
        mcp::http_client_with_token(&gateway.mcp_url(), "tok-alice-0123456789abcdef").await?;
    let bob = mcp::http_client_with_token(&gateway.mcp_url(), "tok-bob-0123456789abcdef").await?;

    let slow = mcp::call_tool(&alice, "query", json!({"sql": "SELECT pg_sleep(2)"}));
    let others = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = mcp::call_tool(&alice, "query", json!({"sql": "SELECT 1"})).await;
        let bobs = mcp::call_tool(&bob, "query", json!({"sql": "SELECT 2"})).await;
        (second, bobs)
    };
    let (slow, (second, bobs)) = tokio::join!(slow, others);
    assert!(!is_error(&slow?));
    let second = second?;
    assert!(is_error(&second));
    assert_eq!(
        structured(&second)["error"]["kind"],
        "overloaded",
        "{}",
        text(&second)
    );
    assert!(
        text(&second).contains(
            "principal `alice` is at its limit of 1 concurrent calls (max_concurrent_calls_per_principal)"
        ),
        "{}",
        text(&second)
    );
    assert_eq!(structured(&second)["error"]["retry_safe"], true);
    // Others are not held back, and alice may call again once done.
    assert_eq!(structured(&bobs?)["rows"], json!([[2]]));
    let again = mcp::call_tool(&alice, "query", json!({"sql": "SELECT 3"})).await?;
    assert_eq!(structured(&again)["rows"], json!([[3]]), "{}", text(&again));
    Ok(())
}

#[tokio::test]
async fn worker_admits_only_so_many_calls() -> Result<()> {
    let stack = Stack::start_with("", &["--max-concurrent-calls", "1"], &[]).await?;
    let mut c1 = stack.worker.client().await?;
    let mut c2 = stack.worker.client().await?;
    let slow = query(&mut c1, sql("SELECT pg_sleep(2)"));
    let rest = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let direct = c2.query(sql("SELECT 1")).await;
        let info = c2.info(pgmcp_proto::v1::InfoRequest {}).await;
        let via_mcp = stack.query(json!({"sql": "SELECT 1"})).await;
        (direct, info, via_mcp)
    };
    let (slow, (direct, info, via_mcp)) = tokio::join!(slow, rest);
    slow.map_err(|e| anyhow::anyhow!(e.message))?;
    let status = direct.err().context("a second call was admitted")?;
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("at its limit of 1 concurrent calls (max_concurrent_calls)"),
        "{status:?}"
    );
    // Info is cheap and always answered.
    assert!(info.is_ok());
    let via_mcp = via_mcp?;
    assert_eq!(
        structured(&via_mcp)["error"]["kind"],
        "overloaded",
        "{}",
        text(&via_mcp)
    );
    assert!(text(&via_mcp).contains("Retry"), "{}", text(&via_mcp));

    // The slot is free again once the stream has ended.
    let res = query(&mut c2, sql("SELECT 1"))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    assert_eq!(res.rows, vec![json!([1])]);
    Ok(())
}

#[tokio::test]
async fn gateway_checks_sql_size_and_params_before_calling_a_worker() -> Result<()> {
    let stack = Stack::start_with("", &[], &["--max-sql-bytes", "64", "--max-params", "2"]).await?;
    let long = format!("SELECT '{}'", "x".repeat(100));
    let res = stack.query(json!({"sql": long})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("is 109 bytes, over this gateway's limit of 64 bytes (max_sql_bytes)"),
        "{}",
        text(&res)
    );
    let res = stack
        .query(json!({"sql": "SELECT $1::int + $2::int + $3::int", "params": [1, 2, 3]}))
        .await?;
    assert!(
        text(&res).contains("3 params given, over this gateway's limit of 2 (max_params)"),
        "{}",
        text(&res)
    );
    let res = stack
        .query(json!({"sql": "SELECT $1::int + $2::int", "params": [1, 2]}))
        .await?;
    assert_eq!(structured(&res)["rows"], json!([[3]]), "{}", text(&res));
    Ok(())
}

/// `execute`, `explain`, each statement of `transaction` and each query of
/// `batch_query` get the same early check as `query`: the gateway refuses an
/// oversized statement, naming the limit and its value (and which item),
/// before any worker sees it.
#[tokio::test]
async fn every_tool_carrying_sql_checks_its_size_at_the_gateway() -> Result<()> {
    let stack = Stack::start_with(
        "CREATE TABLE t (id int, note text)",
        &["--mode", "read-write"],
        &["--max-sql-bytes", "64", "--max-params", "2"],
    )
    .await?;
    let pad = "x".repeat(60);
    let long_insert = format!("INSERT INTO t VALUES (1, '{pad}')");
    let long_select = format!("SELECT '{pad}'");
    let limit = |n: usize| {
        format!(
            "the SQL statement is {n} bytes, over this gateway's limit of 64 bytes (max_sql_bytes)"
        )
    };
    let call = |tool: &'static str, args: serde_json::Value| {
        let client = &stack.client;
        async move { mcp::call_tool(client, tool, args).await }
    };

    let res = call("execute", json!({"sql": long_insert})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains(&limit(long_insert.len())),
        "{}",
        text(&res)
    );
    assert_eq!(
        structured(&res)["error"]["kind"],
        "invalid_request",
        "{}",
        text(&res)
    );

    let res = call(
        "transaction",
        json!({"statements": [{"sql": "INSERT INTO t VALUES (2, 'short')"}, {"sql": long_insert}]}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains(&format!("statement 2: {}", limit(long_insert.len()))),
        "{}",
        text(&res)
    );
    let res = call(
        "transaction",
        json!({"statements": [{"sql": "INSERT INTO t VALUES ($1, $2, $3)", "params": [1, "a", 3]}]}),
    )
    .await?;
    assert!(
        text(&res)
            .contains("statement 1: 3 params given, over this gateway's limit of 2 (max_params)"),
        "{}",
        text(&res)
    );

    let res = call(
        "batch_query",
        json!({"queries": [{"sql": "SELECT 1"}, {"sql": long_select}]}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains(&format!("query 2: {}", limit(long_select.len()))),
        "{}",
        text(&res)
    );

    let res = call("explain", json!({"sql": long_select})).await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains(&limit(long_select.len())),
        "{}",
        text(&res)
    );

    // Nothing reached the database: not even the transaction's first statement.
    let res = stack
        .query(json!({"sql": "SELECT count(*)::int FROM t"}))
        .await?;
    assert_eq!(structured(&res)["rows"], json!([[0]]), "{}", text(&res));
    // Under the limits, the same tools work.
    let res = call(
        "execute",
        json!({"sql": "INSERT INTO t VALUES ($1, $2)", "params": [1, "a"]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    let res = call("explain", json!({"sql": "SELECT * FROM t"})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn grpc_message_size_is_limited_in_both_directions() -> Result<()> {
    // The gateway refuses a worker message over its limit …
    let stack = Stack::start_with("", &[], &["--max-message-bytes", "4096"]).await?;
    let res = stack
        .query(json!({"sql": "SELECT repeat('x', 20000)"}))
        .await?;
    assert!(is_error(&res));
    assert!(
        text(&res).contains("the limit is: 4096 bytes"),
        "{}",
        text(&res)
    );
    assert!(text(&res).contains("--max-message-bytes"), "{}", text(&res));
    let res = stack.query(json!({"sql": "SELECT 'small'"})).await?;
    assert_eq!(structured(&res)["rows"], json!([["small"]]));

    // … and so does the worker, for what it receives and what it would send.
    let small = InProcessWorker::start(&[
        "--database-url",
        &stack.pg.owner_url("app"),
        "--max-message-bytes",
        "4096",
    ])
    .await?;
    let mut client = small.client().await?;
    let err = query(&mut client, sql(&format!("SELECT '{}'", "y".repeat(8000))))
        .await
        .err()
        .context("an oversized request was accepted")?;
    assert!(
        err.message.contains("the limit is: 4096 bytes"),
        "{}",
        err.message
    );
    let gateway = InProcessGateway::start(&[small.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT repeat('z', 20000)"}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("--max-message-bytes"), "{}", text(&res));
    Ok(())
}

/// A call refused for a size limit: `invalid_request`, saying what was
/// given against the limit, naming the flag, and who changes it.
fn over_limit(res: &rmcp::model::CallToolResult, said: &str, flag: &str) {
    mcp::assert_tool_error(res, "invalid_request", &format!("{said} ({flag})"));
    let text = text(res);
    assert!(
        text.contains(&format!("an operator raises {flag}")),
        "{text}"
    );
}

/// How many statements one `transaction` carries, queries one `batch_query`
/// and rows one `bulk_insert`: over the limit, the gateway refuses the call
/// before any worker sees it, naming the limit, its value and the flag an
/// operator changes; at the limit, the call runs.
#[tokio::test]
async fn transaction_batch_and_bulk_sizes_are_limited_by_named_flags() -> Result<()> {
    let stack = Stack::start_with(
        "CREATE TABLE t (id int)",
        &["--mode", "read-write"],
        &[
            "--max-transaction-statements",
            "2",
            "--max-batch-queries",
            "3",
            "--max-bulk-rows",
            "4",
        ],
    )
    .await?;
    let call = |tool: &'static str, args: serde_json::Value| {
        let client = &stack.client;
        async move { mcp::call_tool(client, tool, args).await }
    };
    let insert = |n: i32| json!({"sql": "INSERT INTO t VALUES ($1)", "params": [n]});

    let res = call(
        "transaction",
        json!({"statements": [insert(1), insert(2), insert(3)]}),
    )
    .await?;
    over_limit(
        &res,
        "3 statements given, over this gateway's limit of 2 statements per transaction",
        "--max-transaction-statements",
    );

    let queries: Vec<_> = (1..=4)
        .map(|i| json!({"sql": format!("SELECT {i}")}))
        .collect();
    let res = call("batch_query", json!({"queries": queries})).await?;
    over_limit(
        &res,
        "4 queries given, over this gateway's limit of 3 queries per batch",
        "--max-batch-queries",
    );

    let rows: Vec<_> = (1..=5).map(|i| json!([i])).collect();
    let res = call(
        "bulk_insert",
        json!({"table": "t", "columns": ["id"], "rows": rows}),
    )
    .await?;
    over_limit(
        &res,
        "5 rows given, over this gateway's limit of 4 rows per bulk_insert call",
        "--max-bulk-rows",
    );

    // Nothing ran, not even the transaction's first statements.
    let count = stack
        .pg
        .column("app", "SELECT count(*)::text FROM t")
        .await?;
    assert_eq!(count, vec![Some("0".to_string())]);

    // At the limits, each call runs.
    let res = call("transaction", json!({"statements": [insert(1), insert(2)]})).await?;
    assert_eq!(structured(&res)["committed"], true, "{}", text(&res));
    let queries: Vec<_> = (1..=3)
        .map(|i| json!({"sql": format!("SELECT {i}")}))
        .collect();
    let res = call("batch_query", json!({"queries": queries})).await?;
    assert_eq!(structured(&res)["failed"], 0, "{}", text(&res));
    let rows: Vec<_> = (3..=6).map(|i| json!([i])).collect();
    let res = call(
        "bulk_insert",
        json!({"table": "t", "columns": ["id"], "rows": rows}),
    )
    .await?;
    assert_eq!(structured(&res)["rows_inserted"], 4, "{}", text(&res));
    let count = stack
        .pg
        .column("app", "SELECT count(*)::text FROM t")
        .await?;
    assert_eq!(count, vec![Some("6".to_string())]);
    Ok(())
}

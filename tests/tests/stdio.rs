//! MCP over stdio: a real `pgmcp-gateway --stdio` process, a real worker, a real PostgreSQL.

use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::worker::InProcessWorker;
use pgmcp_tests::{Pg, bins};
use serde_json::json;

#[tokio::test]
async fn query_over_stdio() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    pg.exec(
        "app",
        "CREATE TABLE t (id int, label text); INSERT INTO t VALUES (1, 'one'), (2, 'two');",
    )
    .await?;
    let worker = InProcessWorker::start(&["--database-url", &url]).await?;

    let mut cmd = tokio::process::Command::new(bins::bin("pgmcp-gateway")?);
    cmd.args(["--stdio", "--workers", &worker.url()])
        .env("RUST_LOG", "warn");
    let client = mcp::stdio_client(cmd).await?;

    let tools = client.list_all_tools().await?;
    assert!(tools.iter().any(|t| t.name == "query"), "{tools:?}");
    let res = mcp::call_tool(
        &client,
        "query",
        json!({"sql": "SELECT label FROM t WHERE id = $1", "params": [2]}),
    )
    .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(structured(&res)["rows"], json!([["two"]]));
    let res = mcp::call_tool(&client, "query", json!({"sql": "SELEC 1"})).await?;
    assert!(is_error(&res));
    assert_eq!(structured(&res)["error"]["kind"], "syntax");
    client.cancel().await?;
    Ok(())
}

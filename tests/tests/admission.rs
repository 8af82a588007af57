//! The gateway's HTTP admission: requests beyond `--max-concurrent-requests`
//! are shed at once (503), requests beyond `--rate-limit-per-principal` are
//! refused (429); both say how long to wait (`Retry-After` and a JSON-RPC
//! error with `retry_after_ms`), and neither disturbs the calls admitted.

use std::time::Duration;

use anyhow::Result;
use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use serde_json::{Value, json};

/// A raw `POST /mcp` of a `tools/list` request: (status, Retry-After, body).
async fn post(url: &str) -> Result<(u16, Option<String>, Value)> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await?;
    Ok((
        status,
        retry_after,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

#[tokio::test]
async fn excess_requests_are_shed_with_a_retry_hint() -> Result<()> {
    let stack = Stack::start_with("", &[], &["--max-concurrent-requests", "1"]).await?;
    // One call holds the only slot for a second.
    let client = mcp::http_client(&stack.gateway.mcp_url()).await?;
    let slow = tokio::spawn(async move {
        mcp::call_tool(&client, "query", json!({"sql": "SELECT pg_sleep(1)"})).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, retry_after, body) = post(&stack.gateway.mcp_url()).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("overloaded")
            && message.contains("--max-concurrent-requests")
            && message.contains("retry in 100 ms"),
        "{body}"
    );
    assert_eq!(body["error"]["data"]["retry_after_ms"], 100, "{body}");

    // The admitted call is not disturbed, and the slot is free again after it.
    let res = slow.await??;
    assert!(!is_error(&res), "{}", text(&res));
    let res = mcp::call_tool(&stack.client, "query", json!({"sql": "SELECT 1"})).await?;
    assert_eq!(structured(&res)["rows"], json!([[1]]), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn each_principal_is_held_to_its_rate() -> Result<()> {
    let stack = Stack::start_with("", &[], &["--rate-limit-per-principal", "2"]).await?;
    let url = stack.gateway.mcp_url();
    // The stack's own client spent the first burst on its handshake; once
    // the bucket has refilled, a burst of the rate passes and the next
    // request is refused with the wait.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let (status, retry_after, body) = post(&url).await?;
        statuses.push(status);
        if status == 429 {
            refused = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) =
        refused.ok_or_else(|| anyhow::anyhow!("never refused: {statuses:?}"))?;
    assert_eq!(statuses.len(), 3, "refused after {statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rate limit of 2 requests per second for `anonymous`")
            && message.contains("retry in"),
        "{body}"
    );
    let wait = body["error"]["data"]["retry_after_ms"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=500).contains(&wait), "{body}");
    // After the wait, requests pass again.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    let (status, _, body) = post(&url).await?;
    assert_ne!(status, 429, "{body}");
    Ok(())
}

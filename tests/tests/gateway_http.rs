//! The gateway's HTTP exposure: loopback only without authentication, Origin
//! validation, CORS only when configured, and the request body limit.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use pgmcp_tests::Stack;
use pgmcp_tests::bins;
use pgmcp_tests::gateway::InProcessGateway;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_gateway::Args,
}

fn config(argv: &[&str]) -> Result<pgmcp_gateway::Config> {
    let mut all = vec!["pgmcp-gateway"];
    all.extend_from_slice(argv);
    pgmcp_gateway::Config::from_args(&Cli::try_parse_from(all)?.args)
}

#[tokio::test]
async fn without_auth_only_loopback_is_served() -> Result<()> {
    let err = config(&["--listen", "0.0.0.0:8080"])
        .err()
        .context("a non-loopback address without auth was accepted")?;
    let err = format!("{err:#}");
    assert!(
        err.contains("refusing to serve 0.0.0.0:8080 without authentication"),
        "{err}"
    );
    assert!(err.contains("--insecure-no-auth"), "{err}");
    assert!(config(&["--listen", "0.0.0.0:8080", "--insecure-no-auth"]).is_ok());
    assert!(
        config(&[
            "--listen",
            "0.0.0.0:8080",
            "--auth-tokens",
            "ops all tok-ops-0123456789abcdef"
        ])
        .is_ok()
    );
    assert!(config(&["--listen", "[::1]:8080"]).is_ok());
    // stdio has no listener to protect.
    assert!(config(&["--listen", "0.0.0.0:8080", "--stdio"]).is_ok());

    // The real binary says so and exits.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bins::bin("pgmcp-gateway")?)
            .args(["--listen", "0.0.0.0:0", "--workers", "http://127.0.0.1:1"])
            .env_remove("PGMCP_AUTH_TOKENS")
            .env_remove("PGMCP_AUTH_TOKENS_FILE")
            .env_remove("PGMCP_INSECURE_NO_AUTH")
            .stdin(Stdio::null())
            .output(),
    )
    .await??;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve"), "{stderr}");
    Ok(())
}

/// A raw POST to /mcp with an optional Origin header: (status, headers).
async fn post_with_origin(
    url: &str,
    origin: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap)> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.headers().clone()))
}

#[tokio::test]
async fn origins_are_checked_and_cors_is_opt_in() -> Result<()> {
    let stack = Stack::start("").await?;
    let url = stack.gateway.mcp_url();
    // Non-browser clients send no Origin.
    assert_eq!(post_with_origin(&url, None).await?.0, 200);
    // Pages on this machine may call; others may not (DNS rebinding, CSRF).
    assert_eq!(
        post_with_origin(&url, Some("http://localhost:6274"))
            .await?
            .0,
        200
    );
    assert_eq!(
        post_with_origin(&url, Some("https://evil.example"))
            .await?
            .0,
        403
    );
    // No CORS headers unless configured.
    let (_, headers) = post_with_origin(&url, Some("http://localhost:6274")).await?;
    assert!(headers.get("access-control-allow-origin").is_none());

    let gw = InProcessGateway::start(
        &[stack.worker.url()],
        &[
            "--allowed-origins",
            "https://tools.example",
            "--cors-origins",
            "https://app.example",
        ],
    )
    .await?;
    let url = gw.mcp_url();
    assert_eq!(
        post_with_origin(&url, Some("https://tools.example"))
            .await?
            .0,
        200
    );
    assert_eq!(
        post_with_origin(&url, Some("http://localhost:6274"))
            .await?
            .0,
        403
    );
    let (status, headers) = post_with_origin(&url, Some("https://app.example")).await?;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example")
    );
    // The browser's preflight is answered.
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await?;
    assert!(resp.status().is_success(), "{}", resp.status());
    let allowed = resp
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(allowed.contains("authorization"), "{allowed}");
    Ok(())
}

#[tokio::test]
async fn request_body_limit_names_itself() -> Result<()> {
    let stack = Stack::start_with("", &[], &["--max-request-body-bytes", "2000"]).await?;
    let url = stack.gateway.mcp_url();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"query","arguments":{{"sql":"SELECT '{}'"}}}}}}"#,
        "x".repeat(5_000)
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(big)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 413);
    let body: serde_json::Value = resp.json().await?;
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("over this gateway's limit of 2000 bytes (max_request_body_bytes)"),
        "{body}"
    );
    // Requests under the limit still work.
    let res = stack.query(serde_json::json!({"sql": "SELECT 1"})).await?;
    assert_eq!(
        pgmcp_tests::mcp::structured(&res)["rows"],
        serde_json::json!([[1]])
    );
    Ok(())
}

//! The processes' `--threads`: a gateway and a worker each on one thread
//! serve calls end to end, and a thread count out of range is refused.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use pgmcp_tests::mcp::{self, structured, text};
use pgmcp_tests::procs::Proc;
use pgmcp_tests::{Pg, bins};
use serde_json::json;

#[tokio::test]
async fn one_thread_each_serves_calls() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let mut worker = Proc::worker(&url, &["--threads", "1"], &[]).await?;
    let mut gateway = Proc::gateway(&[worker.url()], &["--threads", "1"], &[]).await?;

    let client = mcp::http_client(&format!("{}/mcp", gateway.url())).await?;
    // A few calls at once: one thread interleaves them.
    let calls = (0..8).map(|i| {
        let client = &client;
        async move {
            mcp::call_tool(
                client,
                "query",
                json!({"sql": "SELECT $1::int AS i", "params": [i]}),
            )
            .await
        }
    });
    for (i, res) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let res = res?;
        assert_eq!(structured(&res)["rows"], json!([[i]]), "{}", text(&res));
    }

    gateway.stop().await?;
    worker.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_thread_count_out_of_range_is_refused() -> Result<()> {
    for bin in ["pgmcp-gateway", "pgmcp-worker"] {
        for threads in ["0", "1025", "many"] {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new(bins::bin(bin)?)
                    .args(["--threads", threads])
                    .stdin(Stdio::null())
                    .output(),
            )
            .await
            .with_context(|| format!("{bin} --threads {threads} did not exit"))??;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{bin} --threads {threads}: {stderr}"
            );
            assert!(
                stderr.contains("invalid value") && stderr.contains("--threads"),
                "{bin} --threads {threads}: {stderr}"
            );
        }
    }
    Ok(())
}

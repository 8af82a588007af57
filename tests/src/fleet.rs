//! Helpers for fleet tests with real processes: a cluster with database
//! `app`, a gateway in front of some workers with an MCP client, and reads
//! that say which worker answered them (a worker's `--name` is its
//! `application_name`).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::Pg;
use crate::mcp::{self, Client, is_error, structured, text};
use crate::procs::Proc;

/// A read that names the worker running it.
pub const WHO: &str = "SELECT current_setting('application_name')";

/// How long one [`who`] read may take, end to end.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a test body within `limit`.
pub async fn bounded(limit: Duration, body: impl Future<Output = Result<()>>) -> Result<()> {
    tokio::time::timeout(limit, body)
        .await
        .with_context(|| format!("the test did not finish within {limit:?}"))?
}

/// A cluster with database `app`, after `setup` (if any) ran in it.
pub async fn app_cluster(setup: &str) -> Result<Pg> {
    let pg = tokio::task::spawn_blocking(Pg::start).await??;
    pg.create_db("app").await?;
    if !setup.is_empty() {
        pg.exec("app", setup).await?;
    }
    Ok(pg)
}

/// A gateway for `workers` (with extra `flags`) and an MCP client
/// connected to it.
pub async fn gateway(workers: &[&Proc], flags: &[&str]) -> Result<(Proc, Client)> {
    let urls: Vec<String> = workers.iter().map(|w| w.url()).collect();
    let g = Proc::gateway(&urls, flags, &[]).await?;
    let client = mcp::http_client(&format!("{}/mcp", g.url())).await?;
    Ok((g, client))
}

/// The worker that answered one read of `app` (within [`CALL_TIMEOUT`]),
/// or the failure's text.
pub async fn who(client: &Client) -> Result<std::result::Result<String, String>> {
    let call = mcp::call_tool(client, "query", json!({"sql": WHO, "database": "app"}));
    let res = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(res) => res?,
        Err(_) => return Ok(Err(format!("no answer within {CALL_TIMEOUT:?}"))),
    };
    if is_error(&res) {
        return Ok(Err(text(&res)));
    }
    Ok(Ok(structured(&res)["rows"][0][0]
        .as_str()
        .context("no worker name in the result")?
        .to_string()))
}

/// Reads until every worker in `names` has answered one (at most 100 calls,
/// 30 s); every call must succeed.
pub async fn warm_up(client: &Client, names: &[&str]) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        match who(client).await? {
            Ok(w) => {
                seen.insert(w);
            }
            Err(e) => bail!("a read failed during warm-up: {e}"),
        }
        if names.iter().all(|n| seen.contains(*n)) {
            return Ok(());
        }
        if Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("not every worker of {names:?} answered during warm-up; saw {seen:?}")
}

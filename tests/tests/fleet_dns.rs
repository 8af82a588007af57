//! `dns://` discovery against a name whose records the test controls: the
//! gateway resolves through a hosts file of the test's (see
//! `Proc::gateway_resolving`), and workers listen on the same port at
//! different loopback addresses, as the pods behind a Kubernetes headless
//! Service do. Addresses added to and removed from the name join and leave
//! the fleet while no call is made, and calls follow.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use pgmcp_tests::Pg;
use pgmcp_tests::fleet::who;
use pgmcp_tests::mcp::{self, Client, is_error, structured, text};
use pgmcp_tests::procs::Proc;
use serde_json::json;

const NAME: &str = "pgmcp-workers.test";

/// Rewrites the hosts file in place (the gateway sees it through a bind
/// mount of this very file, so it must stay the same file).
fn publish(hosts: &Path, addresses: &[&str]) -> Result<()> {
    let mut lines = String::from("127.0.0.1 localhost\n");
    for a in addresses {
        lines.push_str(&format!("{a} {NAME}\n"));
    }
    std::fs::write(hosts, lines)?;
    Ok(())
}

/// The worker URLs `fleet_status` lists.
async fn fleet(client: &Client) -> Result<BTreeSet<String>> {
    let res = mcp::call_tool(client, "fleet_status", json!({})).await?;
    if is_error(&res) {
        bail!("fleet_status failed: {}", text(&res));
    }
    Ok(structured(&res)["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| w["url"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Waits (polling `fleet_status`, which does not resolve anything itself)
/// until the fleet is exactly `want`.
async fn fleet_becomes(client: &Client, want: &[String], within: Duration) -> Result<()> {
    let want: BTreeSet<String> = want.iter().cloned().collect();
    let until = Instant::now() + within;
    loop {
        let now = fleet(client).await?;
        if now == want {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("fleet is {now:?}, expected {want:?} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which workers (by name) answer `calls` queries.
async fn served_by(client: &Client, calls: usize) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for _ in 0..calls {
        match who(client).await? {
            Ok(name) => names.insert(name),
            Err(e) => bail!("query failed: {e}"),
        };
    }
    Ok(names)
}

#[tokio::test]
async fn dns_names_are_followed_as_their_records_change() -> Result<()> {
    tokio::time::timeout(Duration::from_secs(120), run()).await?
}

async fn run() -> Result<()> {
    let pg = Pg::start()?;
    pg.create_db("app").await?;
    let url = pg.owner_url("app");
    let w1 = Proc::worker_on("127.0.0.2:0", &url, &["--name", "w1"], &[]).await?;
    let port = w1.addr.port();
    let w2 = Proc::worker_on(&format!("127.0.0.3:{port}"), &url, &["--name", "w2"], &[]).await?;
    let dir = tempfile::tempdir()?;
    let hosts = dir.path().join("hosts");
    publish(&hosts, &["127.0.0.2"])?;
    let gateway = Proc::gateway_resolving(
        &hosts,
        &[format!("dns://{NAME}:{port}")],
        &["--discovery-interval-ms", "300"],
        &[],
    )
    .await?;
    let client = mcp::http_client(&format!("{}/mcp", gateway.url())).await?;
    let u1 = w1.url();
    let u2 = w2.url();

    fleet_becomes(&client, std::slice::from_ref(&u1), Duration::from_secs(10)).await?;
    assert_eq!(
        served_by(&client, 5).await?,
        BTreeSet::from(["w1".to_string()])
    );

    // A second record appears: the worker joins with no call in flight,
    // then takes calls.
    publish(&hosts, &["127.0.0.2", "127.0.0.3"])?;
    fleet_becomes(&client, &[u1.clone(), u2.clone()], Duration::from_secs(5)).await?;
    let until = Instant::now() + Duration::from_secs(10);
    while !served_by(&client, 10).await?.contains("w2") {
        if Instant::now() > until {
            bail!("the worker added through DNS took no call");
        }
    }

    // The first record goes: its worker leaves, and every call goes to the
    // one left, though the worker itself is still up.
    publish(&hosts, &["127.0.0.3"])?;
    fleet_becomes(&client, std::slice::from_ref(&u2), Duration::from_secs(5)).await?;
    assert_eq!(
        served_by(&client, 10).await?,
        BTreeSet::from(["w2".to_string()])
    );

    // The name stops resolving (a DNS hiccup): the fleet keeps the last
    // addresses rather than emptying, and calls go on.
    publish(&hosts, &[])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fleet(&client).await?, BTreeSet::from([u2.clone()]));
    assert_eq!(
        served_by(&client, 3).await?,
        BTreeSet::from(["w2".to_string()])
    );
    drop(w1);
    Ok(())
}

//! The worker's `Query` RPC against a real PostgreSQL.

use pgmcp_tests::worker::{InProcessWorker, query, sql};
use pgmcp_tests::Pg;

#[tokio::test]
async fn select_one_through_grpc() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let url = pg.url("postgres");
    let worker = InProcessWorker::start(&["--database-url", &url]).await?;
    let mut client = worker.client().await?;
    let res = query(&mut client, sql("SELECT 1 AS one, 'x'::text AS t")).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(res.columns, vec![("one".into(), "int4".into()), ("t".into(), "text".into())]);
    assert_eq!(res.rows, vec![serde_json::json!([1, "x"])]);
    assert_eq!(res.summary.row_count, 1);
    assert!(!res.summary.truncated);
    Ok(())
}

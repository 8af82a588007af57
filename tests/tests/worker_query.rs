//! The worker on its own: gRPC `Info` and `Query`, health, reflection, start-up
//! checks, against a real PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::Context;

use pgmcp_proto::v1::{AccessMode, InfoRequest, QueryRequest};
use pgmcp_tests::worker::{InProcessWorker, query, sql};
use pgmcp_tests::{Pg, bins};

fn fail(e: pgmcp_proto::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.kind(), e.message)
}

#[tokio::test]
async fn select_one_through_grpc() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let worker = InProcessWorker::start(&["--database-url", &url]).await?;
    let mut client = worker.client().await?;
    let res = query(&mut client, sql("SELECT 1 AS one, 'x'::text AS t"))
        .await
        .map_err(fail)?;
    assert_eq!(
        res.columns,
        vec![("one".into(), "int4".into()), ("t".into(), "text".into())]
    );
    assert_eq!(res.rows, vec![serde_json::json!([1, "x"])]);
    assert_eq!(res.summary.row_count, 1);
    assert!(!res.summary.truncated);

    // Columns arrive even when no row does.
    let res = query(&mut client, sql("SELECT 1 AS a WHERE false"))
        .await
        .map_err(fail)?;
    assert_eq!(res.columns, vec![("a".into(), "int4".into())]);
    assert!(res.rows.is_empty());
    Ok(())
}

#[tokio::test]
async fn info_lists_targets_and_modes() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let sales = pg.create_db("sales").await?;
    let hr = pg.create_db("hr").await?;
    let worker = InProcessWorker::start(&[
        "--database-url",
        &sales,
        "--database",
        &format!("people={hr}"),
        "--mode",
        "people=read-write",
        "--name",
        "w-test",
    ])
    .await?;
    let mut client = worker.client().await?;
    let info = client.info(InfoRequest {}).await?.into_inner();
    assert_eq!(info.worker_id, "w-test");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let targets: Vec<(String, String, i32)> = info
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.database.clone(), t.mode))
        .collect();
    assert_eq!(
        targets,
        vec![
            ("sales".into(), "sales".into(), AccessMode::ReadOnly as i32),
            ("people".into(), "hr".into(), AccessMode::ReadWrite as i32),
        ]
    );
    assert!(info.targets[0].server_version.starts_with(char::is_numeric));

    // With two targets a query must name one.
    let err = query(&mut client, sql("SELECT 1"))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected an error"))?;
    assert!(
        err.message.contains("name one with `database`"),
        "{}",
        err.message
    );
    let res = query(
        &mut client,
        QueryRequest {
            database: "people".into(),
            ..sql("SELECT current_database()")
        },
    )
    .await
    .map_err(fail)?;
    assert_eq!(res.rows, vec![serde_json::json!(["hr"])]);

    // Sessions are named after the worker and run in UTC.
    let res = query(
        &mut client,
        QueryRequest { database: "sales".into(), ..sql("SELECT current_setting('application_name'), current_setting('TimeZone'), current_setting('default_transaction_read_only')") },
    )
    .await
    .map_err(fail)?;
    assert_eq!(res.rows, vec![serde_json::json!(["w-test", "UTC", "on"])]);
    Ok(())
}

#[tokio::test]
async fn health_and_reflection_are_served() -> anyhow::Result<()> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let pg = Pg::start()?;
    let worker = InProcessWorker::start(&["--database-url", &pg.create_db("app").await?]).await?;
    let channel = tonic::transport::Endpoint::from_shared(worker.url())?
        .connect()
        .await?;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "pgmcp.v1.Worker"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service `{service}`");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let msg = stream
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no reflection answer"))?;
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        anyhow::bail!("unexpected reflection answer: {msg:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"pgmcp.v1.Worker".to_string()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    Ok(())
}

#[tokio::test]
async fn large_results_stream_in_batches_within_limits() -> anyhow::Result<()> {
    let pg = Pg::start()?;
    let worker = InProcessWorker::start(&["--database-url", &pg.create_db("app").await?]).await?;
    let mut client = worker.client().await?;
    let res = query(
        &mut client,
        QueryRequest {
            max_rows: 25_000,
            ..sql("SELECT g, md5(g::text) FROM generate_series(1, 25000) g")
        },
    )
    .await
    .map_err(fail)?;
    assert_eq!(res.rows.len(), 25_000);
    assert_eq!(res.summary.row_count, 25_000);
    assert!(!res.summary.truncated);
    assert!(
        res.batches > 1,
        "all rows came in {} batch(es)",
        res.batches
    );

    // The byte limit cuts a result explicitly.
    let res = query(
        &mut client,
        QueryRequest {
            max_rows: 25_000,
            max_bytes: 10_000,
            ..sql("SELECT g, md5(g::text) FROM generate_series(1, 25000) g")
        },
    )
    .await
    .map_err(fail)?;
    assert!(res.summary.truncated);
    assert_eq!(
        res.summary.truncation_reason,
        pgmcp_proto::v1::TruncationReason::MaxBytes as i32
    );
    assert!(
        res.summary.bytes <= 10_000 && res.summary.bytes > 9_000,
        "{:?}",
        res.summary
    );
    assert_eq!(res.rows.len() as u64, res.summary.row_count);

    // Limits on the request itself name the limit.
    let big = "SELECT 1 -- ".to_string() + &"x".repeat(2 * 1024 * 1024);
    let err = query(&mut client, sql(&big))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected an error"))?;
    assert!(err.message.contains("max_sql_bytes"), "{}", err.message);
    Ok(())
}

#[tokio::test]
async fn unreachable_database_fails_fast_without_leaking_the_password() -> anyhow::Result<()> {
    // Nothing listens on port 1.
    let url = "postgres://app:s3cr3t-pw@127.0.0.1:1/shop";
    let started = Instant::now();
    let err = match InProcessWorker::start(&["--database-url", url, "--connect-timeout-ms", "3000"])
        .await
    {
        Ok(_) => anyhow::bail!("the worker started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        err.contains("cannot connect to database `shop` at 127.0.0.1:1 as user `app`"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-pw"), "password leaked: {err}");

    // The real binary says the same on stderr and exits non-zero.
    let out = tokio::process::Command::new(bins::bin("pgmcp-worker")?)
        .args(["--listen", "127.0.0.1:0", "--connect-timeout-ms", "3000"])
        .env("DATABASE_URL", url)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot connect to database `shop`"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t-pw"), "password leaked: {stderr}");

    // Bad configuration is explained too.
    let out = tokio::process::Command::new(bins::bin("pgmcp-worker")?)
        .env_remove("DATABASE_URL")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no database configured"), "{stderr}");
    Ok(())
}

/// A pooled connection is only used for a call when it is clean: not left
/// inside an earlier transaction, no SQL-level prepared statements. Such a
/// connection is closed at the call's BEGIN and another one serves it.
#[tokio::test]
async fn unfit_pooled_connections_are_replaced_at_begin() -> anyhow::Result<()> {
    use pgmcp_worker::session::{Access, Session};
    use pgmcp_worker::targets::Targets;
    use sqlx::{Executor, Row};

    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let config = pgmcp_tests::worker::config(&[
        "--database-url",
        &url,
        "--pool-max-connections",
        "1",
        "--pool-min-connections",
        "1",
    ])?;
    let targets = Targets::connect(&config).await?;
    let target = targets
        .get("app")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .clone();

    for (what, left_behind) in [
        ("an open transaction", "BEGIN READ ONLY"),
        ("a failed transaction", "BEGIN READ ONLY; SELECT 1/0"),
        ("a prepared statement", "PREPARE leftover AS SELECT 1"),
    ] {
        // The pool's only connection goes back with something left behind.
        let mut conn = target.acquire().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let before: i32 = sqlx::query("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        // (The failed transaction fails, as it is meant to.)
        let _ = (&mut *conn).execute(left_behind).await;
        drop(conn);

        let mut session = Session::begin(&target, Access::ReadOnly, 5_000)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_ne!(
            session.pid(),
            before,
            "{what}: the unfit connection was used"
        );
        let row = sqlx::query(
            "SELECT pg_current_xact_id_if_assigned() IS NULL, \
             transaction_timestamp() = statement_timestamp(), \
             (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
             current_setting('statement_timeout')",
        )
        .fetch_one(session.conn())
        .await?;
        assert!(row.try_get::<bool, _>(0)?, "{what}");
        // The call's own transaction began at its BEGIN, not earlier.
        assert!(!row.try_get::<bool, _>(1)?, "{what}");
        assert_eq!(row.try_get::<i64, _>(2)?, 0, "{what}");
        assert_eq!(row.try_get::<String, _>(3)?, "5s", "{what}");
        session.rollback_unawaited(&target);

        // The unfit backend goes away.
        let gone = Instant::now() + Duration::from_secs(5);
        loop {
            let left = pg
                .column(
                    "app",
                    &format!("SELECT count(*)::text FROM pg_stat_activity WHERE pid = {before}"),
                )
                .await?;
            if left == vec![Some("0".to_string())] {
                break;
            }
            anyhow::ensure!(
                Instant::now() < gone,
                "{what}: backend {before} still there"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    targets.close().await;
    Ok(())
}

/// A pooled connection keeps at most `--statement-cache-capacity` prepared
/// statements (each one kept costs every later call on it, as the check at
/// BEGIN reads them all), unless the target's URL sets
/// `statement-cache-capacity` itself.
#[tokio::test]
async fn a_connection_keeps_no_more_prepared_statements_than_its_cache_holds() -> anyhow::Result<()>
{
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let own = format!("own={url}{sep}statement-cache-capacity=8");
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--database",
        &own,
        "--pool-max-connections",
        "1",
        "--pool-min-connections",
        "1",
        "--statement-cache-capacity",
        "3",
    ])
    .await?;
    let mut client = worker.client().await?;
    for (database, kept) in [("app", 3), ("own", 8)] {
        let on = |text: &str| QueryRequest {
            database: database.to_string(),
            ..sql(text)
        };
        for i in 0..12 {
            query(&mut client, on(&format!("SELECT {i} AS n")))
                .await
                .map_err(fail)?;
        }
        let res = query(
            &mut client,
            on("SELECT count(*)::int AS n FROM pg_catalog.pg_prepared_statements"),
        )
        .await
        .map_err(fail)?;
        assert_eq!(res.rows, vec![serde_json::json!([kept])], "{database}");
    }

    // A URL that turns the cache off is refused, as the flag would be.
    let off = format!("{url}{sep}statement-cache-capacity=0");
    let err = InProcessWorker::start(&["--database-url", &off])
        .await
        .err()
        .context("a URL with statement-cache-capacity=0 was accepted")?;
    let msg = format!("{err:#}");
    assert!(
        msg.contains("statement-cache-capacity=0") && msg.contains("use at least 1"),
        "{msg}"
    );
    Ok(())
}

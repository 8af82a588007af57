//! The gateway → worker hop: the shared worker token, mutual TLS, and the
//! worker's refusal of privileged database roles.

use anyhow::{Context, Result};
use pgmcp_proto::v1::InfoRequest;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_tests::Pg;
use pgmcp_tests::certs::TestPki;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::worker::{InProcessWorker, query, sql};
use serde_json::json;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const WORKER_TOKEN: &str = "worker-token-0123456789abcdef";

async fn serving(channel: Channel) -> Result<bool> {
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status;
    Ok(status == ServingStatus::Serving as i32)
}

#[tokio::test]
async fn worker_token_is_required_but_health_stays_open() -> Result<()> {
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{WORKER_TOKEN}\n"))?;
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--worker-token-file",
        &token_file.display().to_string(),
    ])
    .await?;
    let channel = Endpoint::from_shared(worker.url())?.connect().await?;

    // Without the token: UNAUTHENTICATED for every worker RPC.
    let mut plain = WorkerClient::new(channel.clone());
    let status = plain
        .info(InfoRequest {})
        .await
        .err()
        .context("Info without the token was answered")?;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("--worker-token"), "{status:?}");
    let err = query(&mut plain, sql("SELECT 1"))
        .await
        .err()
        .context("Query without the token was answered")?;
    assert_eq!(err.kind(), pgmcp_proto::error::ErrorKind::Internal);

    // A wrong token is no better.
    let mut wrong = WorkerClient::with_interceptor(channel.clone(), |mut r: tonic::Request<()>| {
        r.metadata_mut().insert(
            "authorization",
            "Bearer not-the-token-at-all"
                .parse()
                .map_err(|_| tonic::Status::internal("md"))?,
        );
        Ok(r)
    });
    let status = wrong
        .info(InfoRequest {})
        .await
        .err()
        .context("wrong token accepted")?;
    assert_eq!(status.code(), Code::Unauthenticated);

    // Health checks need nothing.
    assert!(serving(channel.clone()).await?);

    // A gateway with the token works; one without gets a masked internal
    // error with a request id, and is not ready.
    let good = InProcessGateway::start(
        &[worker.url()],
        &["--worker-token-file", &token_file.display().to_string()],
    )
    .await?;
    let client = mcp::http_client(&good.mcp_url()).await?;
    let res = mcp::call_tool(&client, "query", json!({"sql": "SELECT 41 + 1"})).await?;
    assert_eq!(structured(&res)["rows"], json!([[42]]), "{}", text(&res));

    let bad = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&bad.mcp_url()).await?;
    let res = mcp::call_tool(&client, "query", json!({"sql": "SELECT 1"})).await?;
    assert!(is_error(&res));
    let err = &structured(&res)["error"];
    assert_eq!(err["kind"], "internal", "{}", text(&res));
    let request_id = err["request_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(request_id.len(), 16, "{err}");
    assert!(text(&res).contains(&request_id), "{}", text(&res));
    assert!(
        !text(&res).contains("worker-token"),
        "internals leaked: {}",
        text(&res)
    );
    let (status, _) = pgmcp_tests::gateway::http_get(bad.addr, "/readyz", "127.0.0.1").await?;
    assert_eq!(status, 503);
    Ok(())
}

fn tls_endpoint(url: &str, pki: &TestPki, client_cert: Option<&TestPki>) -> Result<Endpoint> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.path("ca.pem"))?))
        .domain_name("localhost");
    if let Some(c) = client_cert {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(c.path("gateway.pem"))?,
            std::fs::read(c.path("gateway-key.pem"))?,
        ));
    }
    Ok(Endpoint::from_shared(url.to_string())?.tls_config(tls)?)
}

#[tokio::test]
async fn mutual_tls_between_gateway_and_worker() -> Result<()> {
    let pki = TestPki::generate()?;
    let pg = Pg::start()?;
    let url = pg.create_db("app").await?;
    let health_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let worker = InProcessWorker::start(&[
        "--database-url",
        &url,
        "--tls-cert",
        &pki.arg("worker.pem"),
        "--tls-key",
        &pki.arg("worker-key.pem"),
        "--tls-ca",
        &pki.arg("ca.pem"),
        "--health-listen",
        &health_port.to_string(),
    ])
    .await?;
    let https = format!("https://localhost:{}", worker.addr.port());

    // The happy path: a gateway with its client certificate.
    let gateway = InProcessGateway::start(
        std::slice::from_ref(&https),
        &[
            "--tls-ca",
            &pki.arg("ca.pem"),
            "--tls-cert",
            &pki.arg("gateway.pem"),
            "--tls-key",
            &pki.arg("gateway-key.pem"),
        ],
    )
    .await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;
    let res = mcp::call_tool(&client, "query", json!({"sql": "SELECT 'over tls'"})).await?;
    assert_eq!(
        structured(&res)["rows"],
        json!([["over tls"]]),
        "{}",
        text(&res)
    );
    let (status, _) = pgmcp_tests::gateway::http_get(gateway.addr, "/readyz", "127.0.0.1").await?;
    assert_eq!(status, 200);

    // A client certificate from the right CA is let in directly too.
    let channel = tls_endpoint(&https, &pki, Some(&pki))?.connect().await?;
    let info = WorkerClient::new(channel).info(InfoRequest {}).await?;
    assert_eq!(info.into_inner().targets.len(), 1);

    // Without a client certificate, with one from another CA, or in plain
    // text: no call gets through.
    let other = TestPki::generate_named("another CA")?;
    for (what, endpoint) in [
        ("no client certificate", tls_endpoint(&https, &pki, None)?),
        (
            "a foreign certificate",
            tls_endpoint(&https, &pki, Some(&other))?,
        ),
        (
            "plain text",
            Endpoint::from_shared(format!("http://127.0.0.1:{}", worker.addr.port()))?,
        ),
    ] {
        let answered = match endpoint.connect().await {
            Ok(channel) => WorkerClient::new(channel)
                .info(InfoRequest {})
                .await
                .is_ok(),
            Err(_) => false,
        };
        assert!(!answered, "a call with {what} was answered");
    }
    // A gateway without a client certificate is not ready.
    let no_cert = InProcessGateway::start(
        std::slice::from_ref(&https),
        &["--tls-ca", &pki.arg("ca.pem")],
    )
    .await?;
    let (status, _) = pgmcp_tests::gateway::http_get(no_cert.addr, "/readyz", "127.0.0.1").await?;
    assert_eq!(status, 503);

    // Probes that cannot do TLS use the plain health port.
    let plain = Endpoint::from_shared(format!("http://{health_port}"))?
        .connect()
        .await?;
    assert!(serving(plain).await?);
    Ok(())
}

#[tokio::test]
async fn privileged_roles_are_refused_for_read_only_targets() -> Result<()> {
    let pg = Pg::start()?;
    pg.create_db("app").await?;
    pg.exec_as_superuser(
        "app",
        "CREATE ROLE bypasser LOGIN BYPASSRLS; \
         CREATE ROLE climber LOGIN; GRANT postgres TO climber;",
    )
    .await?;
    let cases = [
        (pg.url("app"), "role `postgres` is a superuser"),
        (
            pg.role_url("bypasser", "app"),
            "role `bypasser` is allowed to bypass row-level security (BYPASSRLS)",
        ),
        (
            pg.role_url("climber", "app"),
            "role `climber` can SET ROLE to `postgres`, which is a superuser",
        ),
    ];
    for (url, why) in &cases {
        let err = InProcessWorker::start(&["--database-url", url])
            .await
            .err()
            .with_context(|| format!("a worker started despite: {why}"))?;
        let err = format!("{err:#}");
        assert!(err.contains(why), "{err}");
        assert!(err.contains("--allow-privileged-role"), "{err}");
    }

    // Accepted when explicitly allowed, and for read-write targets.
    let mut allowed =
        InProcessWorker::start(&["--database-url", &pg.url("app"), "--allow-privileged-role"])
            .await?;
    let res = query(
        &mut allowed.client().await?,
        sql("SELECT current_user::text"),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    assert_eq!(res.rows, vec![json!(["postgres"])]);
    allowed.stop().await?;
    let mut rw =
        InProcessWorker::start(&["--database-url", &pg.url("app"), "--mode", "read-write"]).await?;
    rw.stop().await?;

    // The owner role of the test kit is not privileged.
    InProcessWorker::start(&["--database-url", &pg.owner_url("app")]).await?;
    Ok(())
}

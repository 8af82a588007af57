//! Secrets stay secret: a database password that PostgreSQL really checks, a
//! bearer token and a worker token are handed to real `pgmcp-worker` and
//! `pgmcp-gateway` processes logging at debug level; after successful and
//! failing calls, failed logins and a worker started with a wrong password,
//! neither any log line, nor anything a client saw (tool results,
//! `fleet_status`, `list_databases`, the query history), nor any exported
//! trace span contains them. Client-visible errors carry no file paths or
//! stack traces, and an internal error is masked, carrying the request id
//! and the trace id of the exported trace.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use pgmcp_tests::otlp::{Collector, SpanRecord};
use pgmcp_tests::{Pg, bins};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const DB_PASSWORD: &str = "Pw-7f3c1e9a-db-secret";
const WRONG_PASSWORD: &str = "Pw-0b5e2d71-wrong-secret";
const BEARER: &str = "Bearer-5d2b8c41-mcp-secret";
const WORKER_TOKEN: &str = "Worker-9e4a6f02-grpc-secret";
const WRONG_WORKER_TOKEN: &str = "Worker-3c8d1a47-wrong-secret";

/// A child process whose stdout and stderr are collected as they come.
struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` logging at debug level and exporting its traces to
    /// `otlp` (in small batches).
    fn spawn(mut cmd: Command, otlp: &Collector) -> Result<Self> {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.grpc_endpoint())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
            Box::new(child.stdout.take().context("stdout")?),
            Box::new(child.stderr.take().context("stderr")?),
        ];
        for mut pipe in pipes {
            let out = output.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }));
        }
        Ok(Proc {
            child,
            output,
            readers,
        })
    }

    /// Stops the process (SIGTERM) and returns everything it wrote.
    async fn finish(mut self) -> Result<String> {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        Ok(self.output.lock().map(|o| o.clone()).unwrap_or_default())
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for(what: &str, mut ready: impl AsyncFnMut() -> bool, proc: &mut Proc) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if ready().await {
            return Ok(());
        }
        if let Some(status) = proc.child.try_wait()? {
            let out = proc.output.lock().map(|o| o.clone()).unwrap_or_default();
            bail!("{what} exited ({status}):\n{out}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_secrets_never_reach_logs_or_clients() -> Result<()> {
    let worker_bin = bins::bin("pgmcp-worker")?;
    let gateway_bin = bins::bin("pgmcp-gateway")?;
    let otlp = Collector::start().await?;
    let pg = Pg::start()?;
    pg.create_db("app").await?;
    pg.exec("app", "CREATE TABLE t (x int); INSERT INTO t VALUES (7);")
        .await?;
    pg.exec_as_superuser(
        "app",
        &format!(
            "CREATE ROLE secretive LOGIN PASSWORD '{DB_PASSWORD}'; GRANT SELECT ON t TO secretive;"
        ),
    )
    .await?;
    // Make PostgreSQL really ask that role for its password.
    let data = pg
        .cluster()
        .dir()
        .context("cluster directory")?
        .join("data");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         host all secretive 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n\
         host all all ::1/128 trust\n",
    )?;
    pg.exec_as_superuser("postgres", "SELECT pg_reload_conf()")
        .await?;
    let port = pg.cluster().port();
    let good_url = format!("postgres://secretive:{DB_PASSWORD}@127.0.0.1:{port}/app");
    let wrong_url = format!("postgres://secretive:{WRONG_PASSWORD}@127.0.0.1:{port}/app");

    let dir = tempfile::tempdir()?;
    let write = |name: &str, content: &str| -> Result<String> {
        let p = dir.path().join(name);
        std::fs::write(&p, content)?;
        Ok(p.display().to_string())
    };
    let wrong_url_file = write("wrong-db-url", &wrong_url)?;
    let tokens_file = write("tokens", &format!("alice read {BEARER}\n"))?;
    let worker_token_file = write("worker-token", WORKER_TOKEN)?;
    let wrong_worker_token_file = write("wrong-worker-token", WRONG_WORKER_TOKEN)?;

    // A worker with the wrong password fails, saying why, without it.
    let mut cmd = Command::new(&worker_bin);
    cmd.args(["--listen", "127.0.0.1:0", "--connect-timeout-ms", "5000"])
        .env_remove("DATABASE_URL")
        .env("DATABASE_URL_FILE", &wrong_url_file);
    let mut wrong = Proc::spawn(cmd, &otlp)?;
    let status = tokio::time::timeout(Duration::from_secs(30), wrong.child.wait()).await??;
    assert!(!status.success());
    let wrong_log = wrong.finish().await?;
    assert!(
        wrong_log.contains("password authentication failed"),
        "{wrong_log}"
    );

    // The real pair: the password in DATABASE_URL, tokens in files.
    let worker_port = free_port()?;
    let mut cmd = Command::new(&worker_bin);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{worker_port}"),
        "--log-calls",
    ])
    .env("DATABASE_URL", &good_url)
    .env("PGMCP_WORKER_TOKEN_FILE", &worker_token_file);
    let mut worker = Proc::spawn(cmd, &otlp)?;
    let worker_url = format!("http://127.0.0.1:{worker_port}");
    wait_for(
        "the worker",
        async || {
            let Ok(ch) = tonic::transport::Endpoint::from_shared(worker_url.clone()) else {
                return false;
            };
            match ch.connect().await {
                Ok(ch) => tonic_health::pb::health_client::HealthClient::new(ch)
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        },
        &mut worker,
    )
    .await?;

    let gateway_port = free_port()?;
    let mut cmd = Command::new(&gateway_bin);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{gateway_port}"),
        "--workers",
        &worker_url,
        "--auth-tokens-file",
        &tokens_file,
        "--worker-token-file",
        &worker_token_file,
        "--log-calls",
    ]);
    let mut gateway = Proc::spawn(cmd, &otlp)?;
    let gateway_addr: std::net::SocketAddr = format!("127.0.0.1:{gateway_port}").parse()?;
    wait_for(
        "the gateway",
        async || {
            matches!(
                pgmcp_tests::gateway::http_get(gateway_addr, "/readyz", "127.0.0.1").await,
                Ok((200, _))
            )
        },
        &mut gateway,
    )
    .await?;
    let mcp_url = format!("http://127.0.0.1:{gateway_port}/mcp");

    // Everything a client gets to see.
    let mut seen = String::new();
    for token in [None, Some("Bearer-00000000-not-it")] {
        let mut req = reqwest::Client::new()
            .post(&mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await?;
        let headers = format!("{:?}", resp.headers());
        seen.push_str(&format!("{headers}\n{}\n", resp.text().await?));
    }
    let client = mcp::http_client_with_token(&mcp_url, BEARER).await?;
    seen.push_str(&format!("{:?}\n", client.list_all_tools().await?));
    let calls = [
        json!({"sql": "SELECT current_user::text, x FROM t"}),
        json!({"sql": "SELEC 1"}),
        json!({"sql": "SELECT * FROM pg_authid"}),
        json!({"sql": "SELECT 1/0"}),
        json!({"sql": "SELECT setting FROM pg_settings WHERE name = 'password_encryption'"}),
        json!({"sql": "SELECT 1", "database": "nope"}),
        json!({"sql": "SELECT pg_sleep(5)", "timeout_ms": 100}),
    ];
    for args in &calls {
        let res = mcp::call_tool(&client, "query", args.clone()).await?;
        seen.push_str(&format!("{}\n{}\n", text(&res), structured(&res)));
    }
    let first = mcp::call_tool(&client, "query", calls[0].clone()).await?;
    assert!(!is_error(&first), "{}", text(&first));
    assert_eq!(structured(&first)["rows"], json!([["secretive", 7]]));
    // Fleet-wide answers, which describe the worker and its targets.
    for tool in ["fleet_status", "list_databases"] {
        let res = mcp::call_tool(&client, tool, json!({})).await?;
        assert!(!is_error(&res), "{tool}: {}", text(&res));
        assert!(
            structured(&res).to_string().contains("app"),
            "{tool} does not describe the target: {}",
            structured(&res)
        );
        seen.push_str(&format!("{}\n{}\n", text(&res), structured(&res)));
    }
    // The query history, which records every call.
    let history = mcp::read_json(&client, "query-history://recent").await?;
    assert!(
        history["entries"]
            .as_array()
            .is_some_and(|e| e.len() >= calls.len()),
        "{history}"
    );
    seen.push_str(&format!("{history}\n"));
    client.cancel().await?;

    // A gateway the worker does not accept (a wrong worker token): its calls
    // fail with an internal error, masked, naming the request and the trace.
    let bad_port = free_port()?;
    let mut cmd = Command::new(&gateway_bin);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{bad_port}"),
        "--workers",
        &worker_url,
        "--worker-token-file",
        &wrong_worker_token_file,
    ]);
    let mut bad_gateway = Proc::spawn(cmd, &otlp)?;
    let bad_addr: std::net::SocketAddr = format!("127.0.0.1:{bad_port}").parse()?;
    wait_for(
        "the gateway with the wrong worker token",
        async || {
            matches!(
                pgmcp_tests::gateway::http_get(bad_addr, "/healthz", "127.0.0.1").await,
                Ok((200, _))
            )
        },
        &mut bad_gateway,
    )
    .await?;
    let bad_client = mcp::http_client(&format!("http://127.0.0.1:{bad_port}/mcp")).await?;
    let masked = mcp::call_tool(&bad_client, "query", json!({"sql": "SELECT x FROM t"})).await?;
    seen.push_str(&format!("{}\n{}\n", text(&masked), structured(&masked)));
    mcp::assert_tool_error(&masked, "internal", "internal error (request id");
    let error = &structured(&masked)["error"];
    let trace_id = error["trace_id"]
        .as_str()
        .with_context(|| format!("no trace id in {error}"))?
        .to_string();
    assert!(
        trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{trace_id}"
    );
    assert!(
        text(&masked).contains(&format!("trace id {trace_id}")),
        "{}",
        text(&masked)
    );
    let request_id = error["request_id"].as_str().unwrap_or_default().to_string();
    assert!(
        !request_id.is_empty() && text(&masked).contains(&request_id),
        "{}",
        text(&masked)
    );
    // The cause stays with the operators.
    assert!(
        !text(&masked).to_lowercase().contains("unauthenticated"),
        "{}",
        text(&masked)
    );
    bad_client.cancel().await?;

    let bad_gateway_log = bad_gateway.finish().await?;
    let gateway_log = gateway.finish().await?;
    let worker_log = worker.finish().await?;
    // The masked error's trace id is the trace the gateway exported for it,
    // and its logs hold the cause under that request id.
    let spans = otlp
        .wait_for("the traces of the calls", Duration::from_secs(30), |s| {
            s.iter().any(|s| s.trace_id == trace_id)
                && s.iter()
                    .any(|s| s.service == "pgmcp-worker" && s.name.contains("SELECT"))
        })
        .await?;
    assert!(
        spans.iter().any(|s| s.trace_id == trace_id
            && s.service == "pgmcp-gateway"
            && s.name == "tools/call query"),
        "no gateway span for trace {trace_id}"
    );
    assert!(
        bad_gateway_log.contains(&request_id),
        "the masked error's request id is not in the gateway's log:\n{bad_gateway_log}"
    );
    let exported: String = spans.iter().map(span_text).collect();
    // The spans are the real thing: DB spans of the calls, with the caller.
    assert!(
        exported.contains("\"db.collection.name\": \"t\"")
            && exported.contains("\"enduser.id\": \"alice\""),
        "{exported}"
    );
    // The logs are real: they show the calls and who made them.
    assert!(gateway_log.contains("MCP request done"), "{gateway_log}");
    let worker_calls: Vec<&str> = worker_log
        .lines()
        .filter(|l| l.contains("/pgmcp.v1.Worker/Query"))
        .collect();
    assert!(
        worker_calls.iter().any(|l| l.contains("alice")),
        "no worker log line names the principal:\n{worker_log}"
    );

    for (name, secret) in [
        ("database password", DB_PASSWORD),
        ("wrong database password", WRONG_PASSWORD),
        ("bearer token", BEARER),
        ("worker token", WORKER_TOKEN),
        ("wrong worker token", WRONG_WORKER_TOKEN),
    ] {
        for (place, content) in [
            ("worker log", &worker_log),
            ("gateway log", &gateway_log),
            (
                "log of the gateway with the wrong worker token",
                &bad_gateway_log,
            ),
            ("exported trace spans", &exported),
            ("log of the worker with the wrong password", &wrong_log),
            ("client-visible output", &seen),
        ] {
            assert!(
                !content.contains(secret),
                "the {name} appears in the {place}:\n{content}"
            );
        }
    }

    // What clients saw names no file of this machine and no source code.
    let data_dir = data.display().to_string();
    let secrets_dir = dir.path().display().to_string();
    for needle in [
        data_dir.as_str(),
        secrets_dir.as_str(),
        wrong_url_file.as_str(),
        worker_token_file.as_str(),
        tokens_file.as_str(),
        "/tmp/",
        "/root/",
        "/home/",
        "/work/",
        "/usr/",
        ".rs:",
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
    ] {
        assert!(
            !seen.contains(needle),
            "client-visible output contains `{needle}`:\n{seen}"
        );
    }
    Ok(())
}

/// Everything a span carries, as text: name, resource, attributes, status
/// and events.
fn span_text(s: &SpanRecord) -> String {
    format!(
        "{} {:?} {:?} {} {:?}\n",
        s.name, s.resource, s.attributes, s.status_message, s.events
    )
}

//! Authentication and authorization at the gateway, end to end: static
//! bearer tokens and JWTs (from a JWKS file, an HS256 secret and a JWKS URL),
//! 401s with `WWW-Authenticate`, the protected resource metadata, `tools/list`
//! filtered by permissions, and calls refused with the missing permission.

use std::time::Duration;

use anyhow::{Context, Result};
use pgmcp_tests::Pg;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::jwt::{self, AUDIENCE, ISSUER, StaticServer, TestIssuer};
use pgmcp_tests::mcp::{self, structured, text};
use pgmcp_tests::worker::InProcessWorker;
use serde_json::{Value, json};

/// PostgreSQL with databases `app` (table t: 1) and `sales` (table s: 2),
/// one worker serving both, and a gateway with `flags`.
struct Setup {
    gateway: InProcessGateway,
    _worker: InProcessWorker,
    _pg: Pg,
}

async fn setup(flags: &[&str]) -> Result<Setup> {
    let pg = Pg::start()?;
    let app = pg.create_db("app").await?;
    let sales = pg.create_db("sales").await?;
    pg.exec("app", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await?;
    pg.exec("sales", "CREATE TABLE s (y int); INSERT INTO s VALUES (2)")
        .await?;
    let worker = InProcessWorker::start(&[
        "--database",
        &format!("app={app}"),
        "--database",
        &format!("sales={sales}"),
    ])
    .await?;
    let gateway = InProcessGateway::start(&[worker.url()], flags).await?;
    Ok(Setup {
        gateway,
        _worker: worker,
        _pg: pg,
    })
}

/// A raw `tools/list` POST to /mcp: (status, WWW-Authenticate, body).
async fn post(url: &str, token: Option<&str>) -> Result<(u16, String, Value)> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.text().await?;
    Ok((
        status,
        challenge,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

async fn get_json(url: &str) -> Result<(u16, Value)> {
    let resp = reqwest::get(url).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The core tools the `read` permission shows.
const READ_TOOLS: [&str; 8] = [
    "batch_query",
    "describe_table",
    "explain",
    "fleet_status",
    "list_databases",
    "list_schemas",
    "list_tables",
    "query",
];

/// The core tools the `write` permission shows.
const WRITE_TOOLS: [&str; 3] = ["bulk_insert", "execute", "transaction"];

fn tool_names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    tools.iter().map(|t| t.name.to_string()).collect()
}

const ALICE: &str = "tok-alice-0123456789abcdef";
const WENDY: &str = "tok-wendy-0123456789abcdef";
const SAM: &str = "tok-sam-0123456789abcdef";

#[tokio::test]
async fn static_tokens_authenticate_and_scope_calls() -> Result<()> {
    let tokens = format!("alice read {ALICE}; wendy write {WENDY}; sam read:sales {SAM}");
    let s = setup(&["--auth-tokens", &tokens]).await?;
    let url = s.gateway.mcp_url();
    let port = s.gateway.addr.port();

    // No token: 401 pointing at the protected resource metadata.
    let (status, challenge, body) = post(&url, None).await?;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!(
                "resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp\""
            )),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "{challenge}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("bearer token")),
        "{body}"
    );
    assert!(mcp::http_client(&url).await.is_err());

    // A wrong token: 401 invalid_token.
    let (status, challenge, _) = post(&url, Some("tok-nobody-0123456789abcdef")).await?;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        mcp::http_client_with_token(&url, "tok-nobody-0123456789abcdef")
            .await
            .is_err()
    );

    // alice reads anything.
    let alice = mcp::http_client_with_token(&url, ALICE).await?;
    assert_eq!(tool_names(&alice.list_all_tools().await?), READ_TOOLS);
    let res = mcp::call_tool(
        &alice,
        "query",
        json!({"sql": "SELECT x FROM t", "database": "app"}),
    )
    .await?;
    assert_eq!(structured(&res)["rows"], json!([[1]]), "{}", text(&res));
    // The worker's history records who made the call.
    let history = mcp::read_json(&alice, "query-history://recent").await?;
    let entry = history["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["sql"] == "SELECT x FROM t"))
        .with_context(|| format!("alice's call is not in {history}"))?;
    assert_eq!(entry["principal"], "alice", "{entry}");

    // wendy may only write: `query` is hidden, and refused with the missing permission.
    let wendy = mcp::http_client_with_token(&url, WENDY).await?;
    assert_eq!(tool_names(&wendy.list_all_tools().await?), WRITE_TOOLS);
    let res = mcp::call_tool(
        &wendy,
        "query",
        json!({"sql": "SELECT x FROM t", "database": "app"}),
    )
    .await?;
    mcp::assert_tool_error(
        &res,
        "permission_denied",
        "tool `query` needs the `read` permission",
    );
    assert!(text(&res).contains("wendy"), "{}", text(&res));

    // sam reads `sales` only: calls are pinned there, `app` is refused.
    let sam = mcp::http_client_with_token(&url, SAM).await?;
    assert_eq!(tool_names(&sam.list_all_tools().await?), READ_TOOLS);
    // Fleet-wide answers leave out what sam may not read.
    let res = mcp::call_tool(&sam, "list_databases", json!({})).await?;
    let listed = structured(&res);
    let names: Vec<&str> = listed["databases"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["sales"], "{}", text(&res));
    let res = mcp::call_tool(&sam, "query", json!({"sql": "SELECT y FROM s"})).await?;
    assert_eq!(structured(&res)["rows"], json!([[2]]), "{}", text(&res));
    let res = mcp::call_tool(
        &sam,
        "query",
        json!({"sql": "SELECT x FROM t", "database": "app"}),
    )
    .await?;
    mcp::assert_tool_error(
        &res,
        "permission_denied",
        "`read` permission on database `app`",
    );

    // Metadata (RFC 9728) and probes need no token.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, doc) = get_json(&s.gateway.url(path)).await?;
        assert_eq!(status, 200, "{path}");
        assert_eq!(doc["resource"], format!("http://127.0.0.1:{port}/mcp"));
        assert_eq!(
            doc["scopes_supported"],
            json!(["pgmcp:read", "pgmcp:write", "pgmcp:dba"])
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    let (status, _) =
        pgmcp_tests::gateway::http_get(s.gateway.addr, "/healthz", "127.0.0.1").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn jwts_are_checked_and_their_scopes_become_permissions() -> Result<()> {
    let idp = TestIssuer::new("k1")?;
    let flags = idp.gateway_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = setup(&flags).await?;
    let url = s.gateway.mcp_url();

    // ES256 and HS256 tokens with the read scope work.
    for token in [
        idp.es256(&idp.claims("reader-es", "openid pgmcp:read"))?,
        idp.hs256(&idp.claims("reader-hs", "pgmcp:read"))?,
    ] {
        let client = mcp::http_client_with_token(&url, &token).await?;
        assert_eq!(tool_names(&client.list_all_tools().await?), READ_TOOLS);
        let res = mcp::call_tool(
            &client,
            "query",
            json!({"sql": "SELECT x FROM t", "database": "app"}),
        )
        .await?;
        assert_eq!(structured(&res)["rows"], json!([[1]]), "{}", text(&res));
    }

    // What is refused, and why.
    let now = jwt::now();
    let mut cases = Vec::new();
    let mut claims = idp.claims("u", "pgmcp:read");
    claims["exp"] = json!(now - 3600);
    cases.push((idp.es256(&claims)?, "expired"));
    let mut claims = idp.claims("u", "pgmcp:read");
    claims["nbf"] = json!(now + 3600);
    cases.push((idp.es256(&claims)?, "not valid yet"));
    let mut claims = idp.claims("u", "pgmcp:read");
    claims["aud"] = json!("https://someone-else.test/mcp");
    cases.push((idp.es256(&claims)?, "audience"));
    let mut claims = idp.claims("u", "pgmcp:read");
    claims["iss"] = json!("https://evil.test");
    cases.push((idp.es256(&claims)?, "issuer"));
    let mut claims = idp.claims("u", "pgmcp:read");
    claims.as_object_mut().map(|c| c.remove("sub"));
    cases.push((idp.es256(&claims)?, "`sub`"));
    let impostor = TestIssuer::new("k1")?;
    cases.push((
        impostor.es256(&impostor.claims("u", "pgmcp:read"))?,
        "signature",
    ));
    cases.push((
        impostor.hs256(&impostor.claims("u", "pgmcp:read"))?,
        "signature",
    ));
    cases.push(("not.a.jwt".to_string(), "not a JWT"));
    for (token, why) in &cases {
        let (status, challenge, body) = post(&url, Some(token)).await?;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(why), "{why}: {description}");
        assert!(
            mcp::http_client_with_token(&url, token).await.is_err(),
            "{why}"
        );
    }

    // A little clock skew is tolerated.
    let mut claims = idp.claims("u", "pgmcp:read");
    claims["exp"] = json!(now - 5);
    let (status, _, body) = post(&url, Some(&idp.es256(&claims)?)).await?;
    assert_ne!(status, 401, "{body}");

    // Scopes: write only hides `query` and refuses it; a database scope pins calls.
    let writer =
        mcp::http_client_with_token(&url, &idp.es256(&idp.claims("w", "pgmcp:write"))?).await?;
    assert_eq!(tool_names(&writer.list_all_tools().await?), WRITE_TOOLS);
    let res = mcp::call_tool(
        &writer,
        "query",
        json!({"sql": "SELECT 1", "database": "app"}),
    )
    .await?;
    assert_eq!(structured(&res)["error"]["kind"], "permission_denied");
    assert!(
        text(&res).contains("needs the `read` permission"),
        "{}",
        text(&res)
    );
    assert!(text(&res).contains("pgmcp:read"), "{}", text(&res));

    let sales_only =
        mcp::http_client_with_token(&url, &idp.es256(&idp.claims("s", "pgmcp:read:sales"))?)
            .await?;
    let res = mcp::call_tool(&sales_only, "query", json!({"sql": "SELECT y FROM s"})).await?;
    assert_eq!(structured(&res)["rows"], json!([[2]]), "{}", text(&res));
    let res = mcp::call_tool(
        &sales_only,
        "query",
        json!({"sql": "SELECT 1", "database": "app"}),
    )
    .await?;
    assert!(
        text(&res).contains("`read` permission on database `app`"),
        "{}",
        text(&res)
    );

    // The metadata names the authorization server.
    let (_, doc) = get_json(&s.gateway.url("/.well-known/oauth-protected-resource/mcp")).await?;
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    Ok(())
}

#[tokio::test]
async fn jwks_url_is_fetched_and_refreshed_for_new_keys() -> Result<()> {
    let first = TestIssuer::new("k1")?;
    let server = StaticServer::start(first.jwks().to_string()).await?;
    let s = setup(&[
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
        "--jwt-jwks-url",
        &server.url,
        "--jwt-jwks-refresh-s",
        "1",
    ])
    .await?;
    let url = s.gateway.mcp_url();
    assert!(server.hits() >= 1);
    let token = first.es256(&first.claims("a", "pgmcp:read"))?;
    let (status, _, body) = post(&url, Some(&token)).await?;
    assert_ne!(status, 401, "{body}");

    // A key the issuer rotates in is picked up.
    let second = TestIssuer::new("k2")?;
    let token2 = second.es256(&second.claims("b", "pgmcp:read"))?;
    let (status, _, _) = post(&url, Some(&token2)).await?;
    assert_eq!(status, 401);
    let keys = json!({"keys": [first.jwks()["keys"][0], second.jwks()["keys"][0]]});
    server.set(keys.to_string());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, _, body) = post(&url, Some(&token2)).await?;
    assert_ne!(status, 401, "{body}");

    // An unreachable JWKS URL stops the gateway at start-up, clearly.
    let err = InProcessGateway::start(
        &["http://127.0.0.1:1".to_string()],
        &[
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
            "--jwt-jwks-url",
            "http://127.0.0.1:1/jwks.json",
        ],
    )
    .await
    .err()
    .context("the gateway started without its keys")?;
    let err = format!("{err:#}");
    assert!(err.contains("cannot load the JWKS"), "{err}");
    Ok(())
}

#[tokio::test]
async fn read_scope_cannot_write_or_administer_and_nothing_is_written() -> Result<()> {
    let pg = Pg::start()?;
    let app = pg.create_db("app").await?;
    pg.exec("app", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await?;
    let worker =
        InProcessWorker::start(&["--database", &format!("app={app}"), "--mode", "read-write"])
            .await?;
    let idp = TestIssuer::new("k1")?;
    let mut flags = idp.gateway_flags();
    flags.extend([
        "--auth-tokens".to_string(),
        format!("alice read {ALICE}; wendy write {WENDY}"),
        "--toolsets".to_string(),
        "all".to_string(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let gateway = InProcessGateway::start(&[worker.url()], &flags).await?;
    let url = gateway.mcp_url();

    let calls = [
        (
            "execute",
            json!({"sql": "INSERT INTO t VALUES (2)"}),
            "write",
        ),
        (
            "transaction",
            json!({"statements": [{"sql": "DELETE FROM t"}, {"sql": "INSERT INTO t VALUES (3)"}]}),
            "write",
        ),
        (
            "bulk_insert",
            json!({"table": "t", "columns": ["x"], "rows": [[4], [5]]}),
            "write",
        ),
        ("analyze_table", json!({"table": "t"}), "dba"),
        (
            "vacuum_table",
            json!({"table": "t", "analyze": true}),
            "dba",
        ),
        ("invalidate_schema_cache", json!({}), "dba"),
    ];
    // A static token and a JWT with only the read scope; then a writer,
    // who may write but not administer.
    let reader_jwt = idp.es256(&idp.claims("reader", "pgmcp:read"))?;
    for (who, token, may_write) in [
        ("alice", ALICE.to_string(), false),
        ("reader", reader_jwt, false),
        ("wendy", WENDY.to_string(), true),
    ] {
        let client = mcp::http_client_with_token(&url, &token).await?;
        let listed = tool_names(&client.list_all_tools().await?);
        for (tool, args, needs) in &calls {
            if *needs == "write" && may_write {
                continue;
            }
            assert!(
                !listed.iter().any(|t| t == tool),
                "{who} is shown {tool}: {listed:?}"
            );
            let res = mcp::call_tool(&client, tool, args.clone()).await?;
            mcp::assert_tool_error(
                &res,
                "permission_denied",
                &format!("tool `{tool}` needs the `{needs}` permission"),
            );
            assert!(text(&res).contains(who), "{who}: {}", text(&res));
        }
        client.cancel().await?;
    }

    // Nothing was written, analyzed or vacuumed, and no statement reached
    // the database on behalf of the refused calls.
    let rows = pg
        .column("app", "SELECT string_agg(x::text, ',') FROM t")
        .await?;
    assert_eq!(rows, vec![Some("1".to_string())]);
    let maintained = pg
        .column(
            "app",
            "SELECT (coalesce(vacuum_count, 0) + coalesce(analyze_count, 0))::text \
             FROM pg_stat_user_tables WHERE relname = 't'",
        )
        .await?;
    assert_eq!(maintained, vec![Some("0".to_string())]);
    let alice = mcp::http_client_with_token(&url, ALICE).await?;
    let history = mcp::read_json(&alice, "query-history://recent").await?;
    let entries = history["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().all(|e| {
            let sql = e["sql"].as_str().unwrap_or_default();
            !sql.contains("INSERT") && !sql.contains("DELETE") && !sql.contains("ANALYZE")
        }),
        "refused calls reached a worker: {history}"
    );
    Ok(())
}

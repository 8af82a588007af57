//! The ways a statement is sent: straight to PostgreSQL with sqlx (the
//! floor), with sqlx inside the statements the worker wraps every call in
//! (the floor of the worker's protocol), to the worker's gRPC `Query`
//! (worker cost), and as an MCP `tools/call query` to the gateway (the
//! whole path). Also the two hops without SQL: the gateway's `/healthz` and
//! the worker's health check.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures::StreamExt;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_proto::v1::{QueryRequest, query_response::Part};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::http::{HttpConn, check_tool_answer, tools_call_body};
use crate::load::Caller;

/// A statement of the benchmark and the rows it returns.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    pub case: &'static str,
    pub sql: &'static str,
    pub rows: u64,
}

pub const SELECT_1: Sql = Sql {
    case: "SELECT 1",
    sql: "SELECT 1",
    rows: 1,
};

pub const ROWS_1000: Sql = Sql {
    case: "1,000 rows",
    sql: "SELECT * FROM bench_rows ORDER BY id LIMIT 1000",
    rows: 1000,
};

/// The table behind the 1,000-row case and the big query: `n` rows of five
/// columns of common types (~60 bytes of JSON each).
pub fn table_sql(n: u64) -> String {
    format!(
        "CREATE TABLE bench_rows (id int8 PRIMARY KEY, name text NOT NULL, qty int4 NOT NULL, \
         price numeric(10,2) NOT NULL, created_at timestamptz NOT NULL);
         INSERT INTO bench_rows SELECT g, 'item-' || g, g % 1000, (g % 10000) / 100.0, \
         timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, {n}) g;
         ANALYZE bench_rows;"
    )
}

/// The statement of the big query: every row of `bench_rows`.
pub const BIG_SQL: &str = "SELECT * FROM bench_rows ORDER BY id";

/// Timeout given with every call (the gateway's default).
pub const TIMEOUT_MS: u32 = 30_000;
/// Result byte limit the gateway asks of the worker (its default, 1 MiB).
const GATEWAY_MAX_BYTES: u64 = 1024 * 1024;

/// sqlx on its own connection: the floor.
pub struct SqlxCaller {
    conn: PgConnection,
    sql: Sql,
}

impl SqlxCaller {
    pub async fn connect(url: &str, sql: Sql) -> Result<Self> {
        let conn = PgConnection::connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        Ok(SqlxCaller { conn, sql })
    }
}

impl Caller for SqlxCaller {
    async fn call(&mut self) -> Result<()> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.sql))
            .fetch_all(&mut self.conn)
            .await?;
        ensure!(rows.len() as u64 == self.sql.rows, "unexpected row count");
        Ok(())
    }
}

/// sqlx on its own connection, sending what the worker sends to
/// PostgreSQL for a read: its BEGIN message, the statement (prepared), and
/// its ROLLBACK message. Three round trips, as in the worker; the worker
/// leaves the third to its pool's release check instead of the answer's
/// path, so this path's latency includes one round trip the worker's
/// answer does not wait for.
pub struct SqlxTxCaller {
    inner: SqlxCaller,
    begin: String,
}

impl SqlxTxCaller {
    pub async fn connect(url: &str, sql: Sql) -> Result<Self> {
        use pgmcp_worker::session::{Access, begin_sql};
        Ok(SqlxTxCaller {
            inner: SqlxCaller::connect(url, sql).await?,
            begin: begin_sql(Access::ReadOnly, TIMEOUT_MS, false),
        })
    }
}

impl Caller for SqlxTxCaller {
    async fn call(&mut self) -> Result<()> {
        sqlx::raw_sql(AssertSqlSafe(self.begin.as_str()))
            .fetch_one(&mut self.inner.conn)
            .await?;
        self.inner.call().await?;
        sqlx::raw_sql(pgmcp_worker::session::ROLLBACK_AND_UNLOCK)
            .execute(&mut self.inner.conn)
            .await?;
        Ok(())
    }
}

/// The worker's `Query` RPC on its own HTTP/2 connection, asked for what
/// the gateway asks for.
pub struct GrpcCaller {
    client: WorkerClient<Channel>,
    req: QueryRequest,
    rows: u64,
}

impl GrpcCaller {
    pub async fn connect(worker: SocketAddr, sql: Sql) -> Result<Self> {
        Ok(GrpcCaller {
            client: worker_client(worker).await?,
            req: query_request(sql.sql, sql.rows, GATEWAY_MAX_BYTES),
            rows: sql.rows,
        })
    }
}

impl Caller for GrpcCaller {
    async fn call(&mut self) -> Result<()> {
        let rows = grpc_query(&mut self.client, self.req.clone()).await?;
        ensure!(rows == self.rows, "unexpected row count {rows}");
        Ok(())
    }
}

/// `tools/call query` over one keep-alive HTTP connection to the gateway.
pub struct McpCaller {
    conn: HttpConn,
    body: Bytes,
}

impl McpCaller {
    /// Connects and checks one answer in full before the load starts.
    pub async fn connect(gateway: SocketAddr, sql: Sql) -> Result<Self> {
        let mut conn = HttpConn::connect(gateway).await?;
        let body = tools_call_body("query", json!({"sql": sql.sql, "page_size": sql.rows}));
        let (status, answer) = conn.tools_call("query", body.clone()).await?;
        check_tool_answer(status, &answer)?;
        let content = structured(&answer)?;
        ensure!(
            content["row_count"] == json!(sql.rows) && content["truncated"] == json!(false),
            "unexpected result of `{}`: {content}",
            sql.sql
        );
        Ok(McpCaller { conn, body })
    }
}

impl Caller for McpCaller {
    async fn call(&mut self) -> Result<()> {
        let (status, answer) = self.conn.tools_call("query", self.body.clone()).await?;
        check_tool_answer(status, &answer)
    }
}

/// `GET /healthz` on one keep-alive connection: the HTTP hop into the
/// gateway and back, without MCP or a worker.
pub struct HealthzCaller {
    conn: HttpConn,
}

impl HealthzCaller {
    pub async fn connect(gateway: SocketAddr) -> Result<Self> {
        Ok(HealthzCaller {
            conn: HttpConn::connect(gateway).await?,
        })
    }
}

impl Caller for HealthzCaller {
    async fn call(&mut self) -> Result<()> {
        let (status, _) = self.conn.get("/healthz").await?;
        ensure!(status == 200, "GET /healthz: HTTP {status}");
        Ok(())
    }
}

/// grpc.health.v1 `Check` on one HTTP/2 connection: the gRPC hop into the
/// worker and back, without the database.
pub struct GrpcHealthCaller {
    client: HealthClient<Channel>,
}

impl GrpcHealthCaller {
    pub async fn connect(worker: SocketAddr) -> Result<Self> {
        Ok(GrpcHealthCaller {
            client: HealthClient::new(worker_channel(worker).await?),
        })
    }
}

impl Caller for GrpcHealthCaller {
    async fn call(&mut self) -> Result<()> {
        ensure!(
            worker_is_serving(&mut self.client).await?,
            "the worker is not SERVING"
        );
        Ok(())
    }
}

/// Whether the worker's health service says `pgmcp.v1.Worker` is SERVING.
pub async fn worker_is_serving(client: &mut HealthClient<Channel>) -> Result<bool> {
    let answer = client
        .check(HealthCheckRequest {
            service: "pgmcp.v1.Worker".into(),
        })
        .await?;
    Ok(answer.into_inner().status == ServingStatus::Serving as i32)
}

/// A connection of its own to the worker at `addr`.
async fn worker_channel(addr: SocketAddr) -> Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to the worker at {addr}"))
}

/// A gRPC client of the worker at `addr`, on a connection of its own.
pub async fn worker_client(addr: SocketAddr) -> Result<WorkerClient<Channel>> {
    Ok(WorkerClient::new(worker_channel(addr).await?)
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024))
}

pub fn query_request(sql: &str, max_rows: u64, max_bytes: u64) -> QueryRequest {
    QueryRequest {
        sql: sql.to_string(),
        max_rows,
        max_bytes,
        timeout_ms: TIMEOUT_MS,
        ..QueryRequest::default()
    }
}

/// Sends `req` and reads the whole stream; the number of rows.
pub async fn grpc_query(client: &mut WorkerClient<Channel>, req: QueryRequest) -> Result<u64> {
    let mut request = tonic::Request::new(req);
    request.set_timeout(Duration::from_millis(u64::from(TIMEOUT_MS) + 2_000));
    let mut stream = client.query(request).await?.into_inner();
    let mut rows = 0u64;
    let mut summary = None;
    while let Some(msg) = stream.next().await {
        match msg?.part {
            Some(Part::Rows(batch)) => rows += batch.rows.len() as u64,
            Some(Part::Summary(s)) => summary = Some(s),
            _ => {}
        }
    }
    let summary = summary.context("the result stream ended without a summary")?;
    ensure!(summary.row_count == rows, "summary disagrees with the rows");
    Ok(rows)
}

/// The `structuredContent` of a `tools/call` answer.
pub fn structured(answer: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(answer).context("the answer is not JSON")?;
    match v.pointer("/result/structuredContent") {
        Some(c) => Ok(c.clone()),
        None => bail!("no structuredContent in {v}"),
    }
}

/// Reads all of [`BIG_SQL`] through the gateway, page after page of
/// `page_size` rows; (rows, pages).
pub async fn mcp_all_pages(gateway: SocketAddr, page_size: u64) -> Result<(u64, u64)> {
    let mut conn = HttpConn::connect(gateway).await?;
    let mut args = json!({"sql": BIG_SQL, "page_size": page_size});
    let (mut rows, mut pages) = (0u64, 0u64);
    loop {
        let (status, answer) = conn
            .tools_call("query", tools_call_body("query", args))
            .await?;
        check_tool_answer(status, &answer)?;
        let content = structured(&answer)?;
        rows += content["row_count"].as_u64().context("no row_count")?;
        pages += 1;
        match content["next_cursor"].as_str() {
            Some(cursor) => args = json!({"cursor": cursor}),
            None => return Ok((rows, pages)),
        }
    }
}

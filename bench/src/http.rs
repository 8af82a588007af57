//! One HTTP/1.1 keep-alive connection (hyper's low-level client): each load
//! task owns one, so concurrency N means N TCP connections to the gateway.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// MCP protocol revision the load client speaks: the stateless one (no
/// `initialize`; method and tool name also in headers).
pub const MCP_PROTOCOL_VERSION: &str = "2026-07-28";

pub struct HttpConn {
    addr: SocketAddr,
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            addr,
            host: addr.to_string(),
            sender,
        })
    }

    /// `GET path`: status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, Bytes)> {
        let req = http::Request::get(path)
            .header(http::header::HOST, &self.host)
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    /// `POST /mcp` of one JSON-RPC request whose method is `tools/call`.
    pub async fn tools_call(&mut self, tool: &str, body: Bytes) -> Result<(u16, Bytes)> {
        let req = http::Request::post("/mcp")
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", MCP_PROTOCOL_VERSION)
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .body(Full::new(body))?;
        self.send(req).await
    }

    async fn send(&mut self, req: http::Request<Full<Bytes>>) -> Result<(u16, Bytes)> {
        self.sender
            .ready()
            .await
            .with_context(|| format!("connection to {} closed", self.addr))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A `tools/call` request body (JSON-RPC), with the protocol version,
/// client info and capabilities in `_meta` as the stateless revision asks.
pub fn tools_call_body(tool: &str, arguments: serde_json::Value) -> Bytes {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MCP_PROTOCOL_VERSION,
                "io.modelcontextprotocol/clientInfo": { "name": "pgmcp-bench", "version": env!("CARGO_PKG_VERSION") },
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    Bytes::from(body.to_string())
}

/// Checks a `tools/call` answer cheaply (no parsing): HTTP 200, a JSON-RPC
/// result, not a tool error.
pub fn check_tool_answer(status: u16, body: &[u8]) -> Result<()> {
    if status != 200 {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    if memchr::memmem::find(body, b"\"result\"").is_none()
        || memchr::memmem::find(body, b"\"isError\":true").is_some()
    {
        bail!(
            "the call failed: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    Ok(())
}

//! MCP clients for tests: rmcp's own client over Streamable HTTP or stdio.

use anyhow::{Context, Result, bail};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    MetaObject, ProtocolVersion, ReadResourceRequestParams, RequestMetaObject, ResourceContents,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};

/// A connected MCP client.
pub type Client = RunningService<RoleClient, ClientConfig>;

fn client_config(version: ProtocolVersion) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("pgmcp-tests", "0"),
    )
    .with_protocol_version(version)
}

/// Connects to `url` (ending in `/mcp`) with the newest protocol version.
pub async fn http_client(url: &str) -> Result<Client> {
    http_client_with_version(url, ProtocolVersion::LATEST).await
}

/// Connects to `url` speaking protocol `version` (e.g. 2025-06-18, which
/// still uses `initialize`).
pub async fn http_client_with_version(url: &str, version: ProtocolVersion) -> Result<Client> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    client_config(version)
        .serve(transport)
        .await
        .with_context(|| format!("MCP handshake with {url}"))
}

/// Connects to `url` with the newest protocol version, sending `headers`
/// (e.g. `traceparent`) with every HTTP request.
pub async fn http_client_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<Client> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut map = std::collections::HashMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes())?,
            http::HeaderValue::from_str(v)?,
        );
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).custom_headers(map);
    let transport = StreamableHttpClientTransport::from_config(config);
    client_config(ProtocolVersion::LATEST)
        .serve(transport)
        .await
        .with_context(|| format!("MCP handshake with {url}"))
}

/// Connects to `url` sending `Authorization: Bearer <token>`.
pub async fn http_client_with_token(url: &str, token: &str) -> Result<Client> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    client_config(ProtocolVersion::LATEST)
        .serve(transport)
        .await
        .with_context(|| format!("MCP handshake with {url}"))
}

/// Reads resource `uri`, checks it is one JSON text (with its own URI) and
/// parses it.
pub async fn read_json(client: &Client, uri: &str) -> Result<serde_json::Value> {
    let res = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .with_context(|| format!("reading {uri}"))?;
    match res.contents.first() {
        Some(ResourceContents::TextResourceContents {
            text,
            mime_type,
            uri: got,
            ..
        }) => {
            if mime_type.as_deref() != Some("application/json") || got != uri {
                bail!("{uri} came back as {got} ({mime_type:?})");
            }
            Ok(serde_json::from_str(text)?)
        }
        other => bail!("unexpected contents of {uri}: {other:?}"),
    }
}

/// Starts `command` and speaks MCP over its stdin/stdout.
pub async fn stdio_client(command: tokio::process::Command) -> Result<Client> {
    let transport =
        rmcp::transport::TokioChildProcess::new(command).context("spawning the MCP server")?;
    client_config(ProtocolVersion::V_2025_11_25)
        .serve(transport)
        .await
        .context("MCP handshake over stdio")
}

/// Calls `tool` with `args` (a JSON object).
pub async fn call_tool(
    client: &Client,
    tool: &str,
    args: serde_json::Value,
) -> Result<CallToolResult> {
    let serde_json::Value::Object(args) = args else {
        bail!("tool arguments must be a JSON object");
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    Ok(client.call_tool(params).await?)
}

/// Checks that `result`'s structuredContent validates against the
/// outputSchema `tool` advertises (as strict clients check it).
pub fn assert_valid_output(tool: &rmcp::model::Tool, result: &CallToolResult) -> Result<()> {
    let schema = tool
        .output_schema
        .as_ref()
        .with_context(|| format!("tool {} has no outputSchema", tool.name))?;
    let schema = serde_json::Value::Object((**schema).clone());
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| anyhow::anyhow!("outputSchema of {} is not a valid schema: {e}", tool.name))?;
    let content = result
        .structured_content
        .as_ref()
        .with_context(|| format!("{} returned no structuredContent", tool.name))?;
    let errors: Vec<String> = validator
        .iter_errors(content)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        bail!(
            "structuredContent of {} does not match its outputSchema: {}\ncontent: {content}",
            tool.name,
            errors.join("; ")
        );
    }
    Ok(())
}

/// Calls `tool` with `args` and `meta` as the request's `params._meta`
/// (e.g. `{"traceparent": "00-…"}`).
pub async fn call_tool_with_meta(
    client: &Client,
    tool: &str,
    args: serde_json::Value,
    meta: serde_json::Value,
) -> Result<CallToolResult> {
    let (serde_json::Value::Object(args), serde_json::Value::Object(meta)) = (args, meta) else {
        bail!("tool arguments and meta must be JSON objects");
    };
    let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    params.meta = Some(RequestMetaObject(MetaObject(meta)));
    Ok(client.call_tool(params).await?)
}

/// The text of the first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// The structured content, or `null`.
pub fn structured(result: &CallToolResult) -> serde_json::Value {
    result
        .structured_content
        .clone()
        .unwrap_or(serde_json::Value::Null)
}

/// True when the call failed as a tool error (`isError: true`).
pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// Asserts that `result` is a tool error of `kind` (the contract's
/// snake_case error kind) whose text contains `needle`.
#[track_caller]
pub fn assert_tool_error(result: &CallToolResult, kind: &str, needle: &str) {
    let text = text(result);
    assert!(is_error(result), "not an error: {text}");
    assert_eq!(structured(result)["error"]["kind"], kind, "{text}");
    assert!(text.contains(needle), "no `{needle}` in: {text}");
}

/// Checks `result` against the `outputSchema` that `tool` advertises in
/// `tools/list`, as a strict client would: a tool with an output schema
/// must return `structuredContent` that validates against it (errors
/// included, when they carry structured content). [`assert_valid_output`]
/// with the tool looked up by name, and a check that the schema's root is
/// an object.
pub async fn check_output_schema(
    client: &Client,
    tool: &str,
    result: &CallToolResult,
) -> Result<()> {
    let tools = client.list_all_tools().await?;
    let Some(def) = tools.iter().find(|t| t.name == tool) else {
        bail!("no tool named {tool}");
    };
    let root = def.output_schema.as_ref().and_then(|s| s.get("type"));
    if root != Some(&serde_json::json!("object")) {
        bail!("{tool}: outputSchema root is not type object: {root:?}");
    }
    assert_valid_output(def, result)
}

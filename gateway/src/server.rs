//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router, and the server's self-description.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ResultType, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use tracing::Instrument;

use crate::config::Limits;
use crate::fleet::Fleet;
use crate::telemetry::{McpRequest, Metrics, Outcome};

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    tools: ToolRouter<PgMcp>,
}

/// The MCP service. Cheap to clone: every request gets its own.
#[derive(Clone)]
pub struct PgMcp {
    pub shared: Arc<Shared>,
}

impl PgMcp {
    pub fn new(fleet: Fleet, limits: Limits, metrics: Arc<Metrics>) -> Self {
        PgMcp {
            shared: Arc::new(Shared {
                fleet,
                limits,
                metrics,
                tools: Self::query_router(),
            }),
        }
    }
}

const INSTRUCTIONS: &str = "pgmcp gives read access to PostgreSQL databases. \
Use the `query` tool to run one SQL statement at a time; pass values as `params` ($1, $2, …) \
instead of writing them into the SQL. Results are capped (see `truncated` and `max_rows`).";

// `#[tool_handler]` generates `get_tool`; `call_tool` and `list_tools` are
// written out so that each request runs inside its MCP SERVER span.
#[tool_handler(router = self.shared.tools)]
impl ServerHandler for PgMcp {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let traced = McpRequest::start(
            &self.shared.metrics,
            "tools/call",
            Some(&request.name),
            &context,
        );
        let span = traced.span().clone();
        let tcc = ToolCallContext::new(self, request, context);
        let response = self.shared.tools.call(tcc).instrument(span).await;
        traced.finish(match &response {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => Outcome::ToolError,
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.code.0),
        });
        response
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let traced = McpRequest::start(&self.shared.metrics, "tools/list", None, &context);
        let cache_hints = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let result = ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools: self.shared.tools.list_all(),
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            cache_scope: cache_hints.then_some(CacheScope::Public),
        };
        traced.finish(Outcome::Ok);
        Ok(result)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("pgmcp", env!("CARGO_PKG_VERSION"))
                    .with_title("pgmcp — PostgreSQL"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

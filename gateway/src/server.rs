//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router (filtered by the enabled toolsets), the resources, and
//! the server's self-description.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ResultType,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use tracing::Instrument;

use crate::config::Limits;
use crate::cursor::CursorKey;
use crate::fleet::Fleet;
use crate::resources;
use crate::telemetry::{McpRequest, Metrics, Outcome};
use crate::toolsets::{Toolset, Toolsets};

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    pub cursors: CursorKey,
    pub metrics: Arc<Metrics>,
    pub toolsets: Toolsets,
    tools: ToolRouter<PgMcp>,
}

/// The MCP service. Cheap to clone: every request gets its own.
#[derive(Clone)]
pub struct PgMcp {
    pub shared: Arc<Shared>,
}

impl PgMcp {
    /// A server listing and accepting only the tools of `toolsets`.
    pub fn new(
        fleet: Fleet,
        limits: Limits,
        cursors: CursorKey,
        toolsets: Toolsets,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut tools = Self::query_router()
            + Self::execute_router()
            + Self::transaction_router()
            + Self::batch_query_router()
            + Self::explain_router()
            + Self::bulk_insert_router()
            + Self::list_schemas_router()
            + Self::list_tables_router()
            + Self::describe_table_router()
            + Self::list_databases_router()
            + Self::fleet_status_router()
            + Self::database_health_router()
            + Self::top_queries_router()
            + Self::analyze_table_router()
            + Self::vacuum_table_router()
            + Self::invalidate_schema_cache_router();
        let names: Vec<String> = tools
            .list_all()
            .into_iter()
            .map(|t| t.name.into())
            .collect();
        for name in names.iter().filter(|n| !toolsets.serves(n)) {
            tools.remove_route(name);
        }
        PgMcp {
            shared: Arc::new(Shared {
                fleet,
                limits,
                cursors,
                toolsets,
                metrics,
                tools,
            }),
        }
    }
}

const INSTRUCTIONS: &str = "pgmcp gives access to PostgreSQL databases. \
`list_databases` shows the databases you can name and whether they are read-only. \
Find your way with list_schemas, list_tables and describe_table (also readable as schema:// resources), \
then use the `query` tool to run one SQL statement at a time; pass values as `params` ($1, $2, …) \
instead of writing them into the SQL. Results come in pages (see `truncated` and `next_cursor`). \
Writes go through `execute`, `transaction` and `bulk_insert` on databases configured read-write. \
The resource query-history://recent lists recent statements; stats://fleet the servers' health.";

#[tool_handler(router = self.shared.tools)]
impl ServerHandler for PgMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_tools()
                .build(),
        )
        .with_server_info(
            Implementation::new("pgmcp", env!("CARGO_PKG_VERSION"))
                .with_title("pgmcp — PostgreSQL"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !self.shared.tools.has_route(&name) && !self.shared.toolsets.serves(&name) {
            let set = Toolset::of(&name).name();
            return Err(ErrorData::invalid_params(
                format!(
                    "tool `{name}` belongs to the `{set}` toolset, which this server does not enable \
                     (enabled: {}); the operator can start the gateway with --toolsets core,{set} \
                     (or --toolsets all, env PGMCP_TOOLSETS)",
                    self.shared.toolsets.names()
                ),
                None,
            ));
        }
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

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.traced("resources/list", None, &ctx, async {
            let cursor = request.and_then(|r| r.cursor);
            let first_page = cursor.is_none();
            let mut result = resources::schema::list(self, cursor).await?;
            if first_page {
                let mut all = resources::static_resources();
                all.append(&mut result.resources);
                result.resources = all;
            }
            Ok(result)
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.traced("resources/templates/list", None, &ctx, async {
            Ok(resources::schema::templates())
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.traced("resources/read", None, &ctx, async {
            if let Some(r) = resources::read(&request.uri, &self.shared.fleet).await {
                return r.map(Into::into);
            }
            if request.uri.starts_with("schema://") {
                return resources::schema::read(self, &request.uri)
                    .await
                    .map(Into::into);
            }
            Err(ErrorData::resource_not_found(
                format!(
                    "no resource `{}`; resources/list shows what exists",
                    request.uri
                ),
                None,
            ))
        })
        .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.traced("prompts/list", None, &ctx, async {
            Ok(crate::prompts::list())
        })
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = request.name.clone();
        self.traced("prompts/get", Some(&name), &ctx, async {
            crate::prompts::get(self, request).await.map(Into::into)
        })
        .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.traced("completion/complete", None, &ctx, async {
            crate::completions::complete(self, request).await
        })
        .await
    }
}

impl PgMcp {
    /// Runs one MCP request's work inside its SERVER span and records it
    /// (`mcp.method.name`, outcome, duration).
    async fn traced<T>(
        &self,
        method: &'static str,
        target: Option<&str>,
        ctx: &RequestContext<RoleServer>,
        work: impl std::future::Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let traced = McpRequest::start(&self.shared.metrics, method, target, ctx);
        let span = traced.span().clone();
        let result = work.instrument(span).await;
        traced.finish(match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.code.0),
        });
        result
    }
}

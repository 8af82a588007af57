//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router (filtered by the enabled toolsets), the resources, and
//! the server's self-description.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::config::Limits;
use crate::fleet::Fleet;
use crate::resources;
use crate::toolsets::{Toolset, Toolsets};

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    pub toolsets: Toolsets,
    tools: ToolRouter<PgMcp>,
}

/// The MCP service. Cheap to clone: every request gets its own.
#[derive(Clone)]
pub struct PgMcp {
    pub shared: Arc<Shared>,
}

impl PgMcp {
    /// A server with the default toolsets.
    pub fn new(fleet: Fleet, limits: Limits) -> Self {
        Self::with_toolsets(fleet, limits, Toolsets::default())
    }

    /// A server listing and accepting only the tools of `toolsets`.
    pub fn with_toolsets(fleet: Fleet, limits: Limits, toolsets: Toolsets) -> Self {
        let mut tools = Self::query_router()
            + Self::list_databases_router()
            + Self::fleet_status_router()
            + Self::database_health_router()
            + Self::top_queries_router()
            + Self::analyze_table_router()
            + Self::vacuum_table_router();
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
                toolsets,
                tools,
            }),
        }
    }
}

const INSTRUCTIONS: &str = "pgmcp gives access to PostgreSQL databases. \
Use the `query` tool to run one SQL statement at a time; pass values as `params` ($1, $2, …) \
instead of writing them into the SQL. Results are capped (see `truncated` and `max_rows`). \
`list_databases` shows the databases you can name and whether they are read-only. \
The resource query-history://recent lists recent statements; stats://fleet the servers' health.";

#[tool_handler(router = self.shared.tools)]
impl ServerHandler for PgMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
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
        let tcc = ToolCallContext::new(self, request, context);
        self.shared.tools.call(tcc).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            resources::static_resources(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match resources::read(&request.uri, &self.shared.fleet).await {
            Some(Ok(result)) => Ok(result.into()),
            Some(Err(e)) => Err(e),
            None => Err(ErrorData::resource_not_found(
                format!(
                    "no resource `{}`; resources/list shows what exists",
                    request.uri
                ),
                None,
            )),
        }
    }
}

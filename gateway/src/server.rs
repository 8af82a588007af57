//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router, and the server's self-description.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::config::Limits;
use crate::cursor::CursorKey;
use crate::fleet::Fleet;

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    pub cursors: CursorKey,
    tools: ToolRouter<PgMcp>,
}

/// The MCP service. Cheap to clone: every request gets its own.
#[derive(Clone)]
pub struct PgMcp {
    pub shared: Arc<Shared>,
}

impl PgMcp {
    pub fn new(fleet: Fleet, limits: Limits, cursors: CursorKey) -> Self {
        PgMcp {
            shared: Arc::new(Shared {
                fleet,
                limits,
                cursors,
                tools: Self::query_router()
                    + Self::execute_router()
                    + Self::transaction_router()
                    + Self::batch_query_router()
                    + Self::explain_router()
                    + Self::bulk_insert_router()
                    + Self::list_schemas_router()
                    + Self::list_tables_router()
                    + Self::describe_table_router()
                    + Self::invalidate_schema_cache_router(),
            }),
        }
    }
}

const INSTRUCTIONS: &str = "pgmcp gives read access to PostgreSQL databases. \
Find your way with list_schemas, list_tables and describe_table (also readable as schema:// resources), \
then use the `query` tool to run one SQL statement at a time; pass values as `params` ($1, $2, …) \
instead of writing them into the SQL. Results are capped (see `truncated` and `max_rows`).";

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

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        crate::resources::list(self, request.and_then(|r| r.cursor)).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(crate::resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        crate::resources::read(self, &request.uri)
            .await
            .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(crate::prompts::list())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        crate::prompts::get(self, request).await.map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        crate::completions::complete(self, request).await
    }
}

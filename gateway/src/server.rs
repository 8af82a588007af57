//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router, and the server's self-description.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};

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
                    + Self::bulk_insert_router(),
            }),
        }
    }
}

const INSTRUCTIONS: &str = "pgmcp gives read access to PostgreSQL databases. \
Use the `query` tool to run one SQL statement at a time; pass values as `params` ($1, $2, …) \
instead of writing them into the SQL. Results are capped (see `truncated` and `max_rows`).";

#[tool_handler(router = self.shared.tools)]
impl ServerHandler for PgMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("pgmcp", env!("CARGO_PKG_VERSION"))
                    .with_title("pgmcp — PostgreSQL"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

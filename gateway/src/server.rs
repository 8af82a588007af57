//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router, and the server's self-description.
//!
//! Every tool call passes [`PgMcp::call_tool`]: it finds the caller (the
//! principal the HTTP layer authenticated; the local user over stdio),
//! checks the tool's declared requirement against the caller's permissions,
//! takes one of the caller's concurrent-call slots, and runs the tool inside
//! the call's [`crate::call`] context. `tools/list` shows only the tools the
//! caller may use.

use std::sync::Arc;
use std::time::Instant;

use pgmcp_proto::error::ErrorKind;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ResultType, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::auth::{self, Principal};
use crate::call::{self, CallContext};
use crate::config::Limits;
use crate::errors::GatewayError;
use crate::fleet::Fleet;
use crate::limits::PrincipalLimiter;
use crate::tools::error_result;

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    tools: ToolRouter<PgMcp>,
    limiter: Arc<PrincipalLimiter>,
}

/// The MCP service. Cheap to clone: every request gets its own.
#[derive(Clone)]
pub struct PgMcp {
    pub shared: Arc<Shared>,
}

impl PgMcp {
    pub fn new(fleet: Fleet, limits: Limits) -> Self {
        let limiter = PrincipalLimiter::new(limits.max_concurrent_calls_per_principal);
        PgMcp {
            shared: Arc::new(Shared {
                fleet,
                limits,
                tools: Self::tools(),
                limiter,
            }),
        }
    }

    /// The router of every tool (each file in `tools/` adds its own).
    fn tools() -> ToolRouter<PgMcp> {
        Self::query_router()
    }
}

/// The caller of a request: the principal the HTTP layer put into the
/// request's extensions, or the local user when there is no HTTP request
/// (stdio). `None` (an HTTP request the auth layer did not see) is refused.
fn caller(ctx: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
    match ctx.extensions.get::<http::request::Parts>() {
        Some(parts) => parts.extensions.get::<Arc<Principal>>().cloned(),
        None => Some(Arc::new(Principal::local())),
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

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = match caller(&context) {
            Some(p) => self
                .shared
                .tools
                .list_all()
                .into_iter()
                .filter(|t| auth::permissions::visible(t, &p))
                .collect(),
            None => Vec::new(),
        };
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: hints.then_some(0),
            // The list depends on who asks.
            cache_scope: hints.then_some(CacheScope::Private),
        })
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(principal) = caller(&context) else {
            let err = GatewayError::new(
                ErrorKind::PermissionDenied,
                "the request is not authenticated",
            );
            return Ok(error_result(&err, None).into());
        };
        let ctx = Arc::new(CallContext::new(principal.clone()));
        let request_id = ctx.request_id.clone();
        let tool = request.name.to_string();
        let started = Instant::now();
        let outcome = call::run(ctx, async {
            // An unknown tool falls through to the router, which says so.
            if let Some(def) = self.shared.tools.get(&request.name)
                && let Err(why) =
                    auth::permissions::authorize(def, &principal, &mut request.arguments)
            {
                let err = GatewayError::new(ErrorKind::PermissionDenied, why);
                return Ok(error_result(&err, None).into());
            }
            let _slot = match self.shared.limiter.try_acquire(&principal.name) {
                Ok(slot) => slot,
                Err(err) => return Ok(error_result(&err, None).into()),
            };
            let tcc = ToolCallContext::new(self, request, context);
            self.shared.tools.call(tcc).await
        })
        .await;
        let failed = match &outcome {
            Ok(CallToolResponse::Complete(r)) => r.is_error == Some(true),
            Ok(_) => false,
            Err(_) => true,
        };
        tracing::info!(
            request_id = %request_id,
            principal = %principal.name,
            tool = %tool,
            ms = started.elapsed().as_millis() as u64,
            failed,
            "tool call"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool without a declared requirement would be refused to everyone:
    /// every routed tool must declare one (`meta = crate::auth::requires(…)`).
    #[test]
    fn every_tool_declares_what_it_needs() {
        let tools = PgMcp::tools().list_all();
        assert!(!tools.is_empty());
        for tool in tools {
            assert!(
                auth::Requirement::of(&tool).is_some(),
                "tool `{}` declares no requirement",
                tool.name
            );
        }
    }
}

//! The MCP server: one [`PgMcp`] value per request (it is only an `Arc`),
//! the tool router (filtered by the enabled toolsets), the resources, and
//! the server's self-description.
//!
//! Every tool call passes [`PgMcp::call_tool`]: it finds the caller (the
//! principal the HTTP layer authenticated; the local user over stdio),
//! refuses tools of toolsets this server does not enable, checks the tool's
//! declared requirement against the caller's permissions, takes one of the
//! caller's concurrent-call slots, and runs the tool inside the call's
//! [`crate::call`] context. `tools/list` shows only the enabled tools the
//! caller may use. Resources, prompts and completions also run inside the
//! caller's context and show only the databases the caller may read.

use std::sync::Arc;

use pgmcp_proto::error::ErrorKind;
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

use crate::auth::{self, Principal};
use crate::call::{self, CallContext};
use crate::config::Limits;
use crate::cursor::CursorKey;
use crate::errors::GatewayError;
use crate::fleet::Fleet;
use crate::limits::PrincipalLimiter;
use crate::resources;
use crate::telemetry::{McpRequest, Metrics, Outcome};
use crate::tools::error_result;
use crate::toolsets::{Toolset, Toolsets};

/// State shared by every request.
pub struct Shared {
    pub fleet: Fleet,
    pub limits: Limits,
    pub cursors: CursorKey,
    pub metrics: Arc<Metrics>,
    pub toolsets: Toolsets,
    tools: ToolRouter<PgMcp>,
    limiter: Arc<PrincipalLimiter>,
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
        let mut tools = Self::tools();
        let names: Vec<String> = tools
            .list_all()
            .into_iter()
            .map(|t| t.name.into())
            .collect();
        for name in names.iter().filter(|n| !toolsets.serves(n)) {
            tools.remove_route(name);
        }
        let limiter = PrincipalLimiter::new(limits.max_concurrent_calls_per_principal);
        PgMcp {
            shared: Arc::new(Shared {
                fleet,
                limits,
                cursors,
                toolsets,
                metrics,
                tools,
                limiter,
            }),
        }
    }

    /// The router of every tool (each file in `tools/` adds its own), with
    /// input schemas compacted (see [`crate::tools::compact`]; argument
    /// descriptions are kept: they tell the model how to call).
    fn tools() -> ToolRouter<PgMcp> {
        let mut router = Self::all_tools();
        for route in router.map.values_mut() {
            let mut schema = serde_json::Value::Object((*route.attr.input_schema).clone());
            crate::tools::compact(&mut schema, crate::tools::Schema::Input);
            if let serde_json::Value::Object(mut o) = schema {
                // "Arguments of `query`." says nothing the tool does not.
                o.remove("description");
                route.attr.input_schema = Arc::new(o);
            }
        }
        router
    }

    fn all_tools() -> ToolRouter<PgMcp> {
        Self::query_router()
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
            + Self::invalidate_schema_cache_router()
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

/// The protocol error for a request the HTTP auth layer did not see.
fn unauthenticated() -> ErrorData {
    ErrorData::invalid_request("the request is not authenticated", None)
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
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut traced = McpRequest::start(
            &self.shared.metrics,
            "tools/call",
            Some(&request.name),
            &context,
        );
        let span = traced.span().clone();
        let Some(principal) = caller(&context) else {
            let err = GatewayError::new(
                ErrorKind::PermissionDenied,
                "the request is not authenticated",
            );
            traced.finish(Outcome::ToolError);
            return Ok(error_result(&err, None).into());
        };
        traced.set_principal(&principal.name);
        let name = request.name.to_string();
        if !self.shared.tools.has_route(&name) && !self.shared.toolsets.serves(&name) {
            let set = Toolset::of(&name).name();
            let err = ErrorData::invalid_params(
                format!(
                    "tool `{name}` belongs to the `{set}` toolset, which this server does not enable \
                     (enabled: {}); the operator can start the gateway with --toolsets core,{set} \
                     (or --toolsets all, env PGMCP_TOOLSETS)",
                    self.shared.toolsets.names()
                ),
                None,
            );
            traced.finish(Outcome::Error(err.code.0));
            return Err(err);
        }
        let ctx = Arc::new(CallContext::new(principal.clone()));
        traced.set_request_id(&ctx.request_id);
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
            // The client went away (or cancelled): dropping the tool's future
            // drops its call to the worker, which stops the work in the database.
            let gone = context.ct.clone();
            let tcc = ToolCallContext::new(self, request, context);
            tokio::select! {
                r = self.shared.tools.call(tcc) => r,
                _ = gone.cancelled() => {
                    let err = GatewayError::new(ErrorKind::Cancelled, "the client cancelled the call");
                    Ok(error_result(&err, None).into())
                }
            }
        })
        .instrument(span.clone())
        .await;
        traced.finish(match &outcome {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => Outcome::ToolError,
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.code.0),
        });
        outcome
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut traced = McpRequest::start(&self.shared.metrics, "tools/list", None, &context);
        let tools = match caller(&context) {
            Some(p) => {
                traced.set_principal(&p.name);
                self.shared
                    .tools
                    .list_all()
                    .into_iter()
                    .filter(|t| auth::permissions::visible(t, &p))
                    .collect()
            }
            None => Vec::new(),
        };
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let result = ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: hints.then_some(0),
            // The list depends on who asks.
            cache_scope: hints.then_some(CacheScope::Private),
        };
        traced.finish(Outcome::Ok);
        Ok(result)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.serve("resources/list", None, &ctx, async {
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
        self.serve("resources/templates/list", None, &ctx, async {
            Ok(resources::schema::templates())
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.serve("resources/read", None, &ctx, async {
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
        self.serve("prompts/list", None, &ctx, async {
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
        self.serve("prompts/get", Some(&name), &ctx, async {
            crate::prompts::get(self, request).await.map(Into::into)
        })
        .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.serve("completion/complete", None, &ctx, async {
            crate::completions::complete(self, request).await
        })
        .await
    }
}

impl PgMcp {
    /// Runs one MCP request's work as its caller (see [`crate::call`]),
    /// inside the request's SERVER span, and records it
    /// (`mcp.method.name`, outcome, duration). A request the HTTP auth
    /// layer did not see is refused.
    async fn serve<T>(
        &self,
        method: &'static str,
        target: Option<&str>,
        ctx: &RequestContext<RoleServer>,
        work: impl std::future::Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let mut traced = McpRequest::start(&self.shared.metrics, method, target, ctx);
        let span = traced.span().clone();
        let result = match caller(ctx) {
            Some(principal) => {
                traced.set_principal(&principal.name);
                call::run(Arc::new(CallContext::new(principal)), work)
                    .instrument(span)
                    .await
            }
            None => Err(unauthenticated()),
        };
        traced.finish(match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.code.0),
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool without a declared requirement would be refused to everyone:
    /// every routed tool must declare one (`meta = crate::auth::requires(…)`).
    #[test]
    fn every_tool_declares_what_it_needs() {
        // The full router, before toolsets filter it.
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

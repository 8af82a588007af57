//! `invalidate_schema_cache`: makes every worker read the catalog afresh.

use pgmcp_proto::error::ErrorKind;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;
use crate::server::PgMcp;
use crate::tools::{catalog_deadline, error_result, output_schema, parse_args, structured_result};

/// Arguments of `invalidate_schema_cache`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateSchemaCacheArgs {
    /// Only this database. Default: every database of every worker.
    pub database: Option<String>,
}

/// Result of `invalidate_schema_cache`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InvalidateSchemaCacheOut {
    /// What each worker did.
    pub workers: Vec<WorkerInvalidation>,
    /// The databases whose cache was dropped on at least one worker.
    pub databases: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkerInvalidation {
    /// The worker's address.
    pub worker: String,
    /// The databases whose cache this worker dropped.
    pub databases: Vec<String>,
    /// Why this worker did not answer; its cache expires on its own within its TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[tool_router(router = invalidate_schema_cache_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "invalidate_schema_cache",
        description = "Drop the cached catalog (schemas, tables, table descriptions) on every worker, so \
list_schemas, list_tables, describe_table, the schema:// resources and did-you-mean hints read the catalog \
afresh. Use it after the schema was changed outside pgmcp (a migration, DDL in another tool) when the change \
must show immediately; otherwise the cache refreshes by itself within its TTL (60 s by default). Changes nothing \
in the database.",
        input_schema = schema_for_type::<InvalidateSchemaCacheArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Dba),
        output_schema = output_schema::<InvalidateSchemaCacheOut>(),
        annotations(title = "Refresh the schema cache", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn invalidate_schema_cache(&self, args: JsonObject) -> CallToolResult {
        match self.invalidate_inner(args).await {
            Ok(r) => r,
            Err(e) => error_result(&e, None),
        }
    }
}

impl PgMcp {
    async fn invalidate_inner(&self, args: JsonObject) -> Result<CallToolResult, GatewayError> {
        let args: InvalidateSchemaCacheArgs = parse_args(args)?;
        let database = args.database.unwrap_or_default();
        let answers = self
            .shared
            .fleet
            .invalidate_schema_cache(&database, catalog_deadline(&self.shared.limits))
            .await;
        let mut workers = Vec::new();
        let mut databases: Vec<String> = Vec::new();
        let mut unknown = None;
        for (worker, answer) in answers {
            match answer {
                Ok(r) => {
                    databases.extend(r.databases.iter().cloned());
                    workers.push(WorkerInvalidation {
                        worker,
                        databases: r.databases,
                        error: None,
                    });
                }
                // This worker does not serve the database: nothing to drop.
                Err(e) if e.kind() == ErrorKind::UnknownDatabase => {
                    unknown.get_or_insert(e);
                    workers.push(WorkerInvalidation {
                        worker,
                        databases: Vec::new(),
                        error: None,
                    });
                }
                Err(e) => workers.push(WorkerInvalidation {
                    worker,
                    databases: Vec::new(),
                    error: Some(e.0.message.clone()),
                }),
            }
        }
        databases.sort();
        databases.dedup();
        if databases.is_empty() {
            return Err(match unknown {
                Some(e) => e,
                None => GatewayError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "no worker answered: {}",
                        workers
                            .iter()
                            .filter_map(|w| w.error.as_ref().map(|e| format!("{}: {e}", w.worker)))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ),
            });
        }
        let mut text = format!(
            "Schema cache dropped for {} on {} worker{}.",
            databases.join(", "),
            workers.iter().filter(|w| !w.databases.is_empty()).count(),
            if workers.len() == 1 { "" } else { "s" }
        );
        for w in workers.iter().filter(|w| w.error.is_some()) {
            text.push_str(&format!(
                "\nWorker {} did not answer ({}); its cache expires on its own within its TTL.",
                w.worker,
                w.error.as_deref().unwrap_or_default()
            ));
        }
        Ok(structured_result(
            text,
            &InvalidateSchemaCacheOut { workers, databases },
        ))
    }
}

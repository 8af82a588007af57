//! `database_health` (dba toolset): read-only health checks of one
//! database, each with a status, its numbers and a one-line explanation.

use std::time::Duration;

use pgmcp_proto::v1::{DatabaseHealthRequest, HealthStatus};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::server::PgMcp;
use crate::tools::{DEADLINE_SLACK, error_result, output_schema, parse_args, structured_result};

/// Arguments of `database_health`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    /// Database to check; needed only when several databases are served.
    pub database: Option<String>,
    /// Statement timeout of each check in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
}

/// The result of `database_health`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthReport {
    pub database: String,
    /// The worst status of any check: `ok`, `unknown`, `warning` or `critical`.
    pub status: String,
    pub checks: Vec<CheckResult>,
}

/// One check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckResult {
    /// e.g. `cache_hit_ratio`, `unused_indexes`, `transaction_id_wraparound`.
    pub name: String,
    /// `ok`, `warning`, `critical`, or `unknown` when the check could not run.
    pub status: String,
    /// What was found and what to do, in one line.
    pub summary: String,
    /// The numbers and objects behind the status.
    pub details: serde_json::Value,
}

#[tool_router(router = database_health_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "database_health",
        description = "Check a PostgreSQL database's health in one call: cache hit ratio, connections by state against \
max_connections, long-running queries and idle transactions, sessions blocked by locks, invalid, unused and duplicate \
indexes, estimated table bloat, tables overdue for VACUUM or ANALYZE, transaction-id wraparound age, and sequences near \
their maximum. Each check returns ok/warning/critical (or unknown when the role may not run it), its numbers and a \
one-line explanation with the next step. Read-only: runs catalog and statistics queries only. Use top_queries to find \
the statements that cost the most.",
        input_schema = schema_for_type::<HealthArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Dba),
        output_schema = output_schema::<HealthReport>(),
        annotations(title = "Database health", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn database_health(&self, args: JsonObject) -> CallToolResult {
        let args: HealthArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let timeout_ms = match self.timeout_ms(args.timeout_ms) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let database = args.database.unwrap_or_default();
        let deadline = Duration::from_millis(u64::from(timeout_ms)) * 2 + DEADLINE_SLACK;
        let answer = self
            .shared
            .fleet
            .unary_read(
                DatabaseHealthRequest {
                    database,
                    timeout_ms,
                },
                deadline,
                |mut client, r| async move { client.database_health(r).await },
            )
            .await;
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => return error_result(&e, None),
        };
        let report = HealthReport {
            database: resp.database.clone(),
            status: status_name(resp.status()).into(),
            checks: resp
                .checks
                .iter()
                .map(|c| CheckResult {
                    name: c.name.clone(),
                    status: status_name(c.status()).into(),
                    summary: c.summary.clone(),
                    details: serde_json::from_str(&c.details_json)
                        .unwrap_or(serde_json::Value::Null),
                })
                .collect(),
        };
        structured_result(render(&report), &report)
    }
}

fn status_name(s: HealthStatus) -> &'static str {
    match s {
        HealthStatus::Ok => "ok",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
        HealthStatus::Unknown | HealthStatus::Unspecified => "unknown",
    }
}

fn render(r: &HealthReport) -> String {
    let mut out = format!("Database `{}`: {}\n", r.database, r.status);
    for c in &r.checks {
        out.push_str(&format!("[{}] {}: {}\n", c.status, c.name, c.summary));
    }
    out.push_str("(details of each check are in the structured result)");
    out
}

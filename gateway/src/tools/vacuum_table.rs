//! `vacuum_table` (dba toolset): VACUUM of one table on a read-write target.

use pgmcp_proto::v1::MaintenanceOperation;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::server::PgMcp;
use crate::tools::maintenance::Maintained;
use crate::tools::{error_result, output_schema, parse_args};

/// Arguments of `vacuum_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VacuumArgs {
    /// The table, written as in SQL: `orders`, `sales.orders`, `"Mixed Case"`.
    pub table: String,
    /// Also refresh the planner's statistics (VACUUM (ANALYZE)). Default false.
    #[serde(default)]
    pub analyze: bool,
    /// Database; needed only when several databases are served.
    pub database: Option<String>,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
}

#[tool_router(router = vacuum_table_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "vacuum_table",
        description = "VACUUM one table: reclaim the space of dead row versions for reuse and update the visibility \
map (plain VACUUM, never VACUUM FULL, so it takes no lock that blocks reads or writes). Use it when database_health \
reports many dead rows or autovacuum falling behind; `analyze: true` also refreshes planner statistics. Only on \
read-write databases (list_databases shows the mode). Needs the role to own the table (or the database). Returns the \
statement, its duration and the table's dead/live rows before and after.",
        input_schema = schema_for_type::<VacuumArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Dba),
        output_schema = output_schema::<Maintained>(),
        annotations(title = "VACUUM a table", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn vacuum_table(&self, args: JsonObject) -> CallToolResult {
        let args: VacuumArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let op = if args.analyze {
            MaintenanceOperation::VacuumAnalyze
        } else {
            MaintenanceOperation::Vacuum
        };
        self.maintain(args.database, args.table, op, args.timeout_ms)
            .await
    }
}

//! `describe_table`: everything about one table.

use pgmcp_proto::v1::DescribeTableRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::catalog::TableDescriptionOut;
use crate::errors::GatewayError;
use crate::fleet::Fleet;
use crate::server::PgMcp;
use crate::tools::{catalog_deadline, error_result, output_schema, parse_args, structured_result};

/// Arguments of `describe_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeTableArgs {
    /// The table, view or other relation: an exact name as list_tables shows
    /// it (`Order Items`), or a SQL name, optionally schema-qualified and
    /// quoted (`public.users`, `"Sales"."Order Items"`).
    pub table: String,
    /// The schema, when not part of `table`. Default: the search_path
    /// (usually `public`), else the one schema holding a table of that name.
    pub schema: Option<String>,
    /// Database to look at; needed only when several databases are served.
    pub database: Option<String>,
}

#[tool_router(router = describe_table_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "describe_table",
        description = "Describe one table, view, materialized view, foreign or partitioned table: its columns \
(type, nullability, default, identity or generated expression, comment), primary key, foreign keys in both \
directions (the tables it references and the tables that reference it), unique, check and exclusion \
constraints, indexes with their full definitions, triggers, partitioning, and for views the defining query. \
Call it before writing SQL against a table to get names and types right and to find join paths. `table` takes \
an exact name as list_tables shows it or a SQL name, optionally schema-qualified and quoted \
(`public.users`, `\"Sales\".\"Order Items\"`). A name that does not exist gets an error suggesting the closest \
existing tables.",
        input_schema = schema_for_type::<DescribeTableArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        output_schema = output_schema::<TableDescriptionOut>(),
        annotations(title = "Describe a table", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn describe_table(&self, args: JsonObject) -> CallToolResult {
        let args: DescribeTableArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let req = DescribeTableRequest {
            database: args.database.unwrap_or_default(),
            schema: args.schema.unwrap_or_default(),
            table: args.table,
        };
        match describe(
            &self.shared.fleet,
            req,
            catalog_deadline(&self.shared.limits),
        )
        .await
        {
            Ok(d) => structured_result(d.text(), &d),
            Err(e) => error_result(&e, None),
        }
    }
}

/// Asks a worker for a table's description (also used by `resources/read`).
pub(crate) async fn describe(
    fleet: &Fleet,
    req: DescribeTableRequest,
    deadline: std::time::Duration,
) -> Result<TableDescriptionOut, GatewayError> {
    let res = fleet
        .unary_read(req, deadline, |mut c, r| async move {
            c.describe_table(r).await
        })
        .await?;
    let table = res.table.ok_or_else(|| {
        GatewayError::new(
            pgmcp_proto::error::ErrorKind::Internal,
            "the worker answered without a table description",
        )
    })?;
    Ok(TableDescriptionOut::new(&res.database, table))
}

//! `list_schemas`: the schemas of a database.

use pgmcp_proto::v1::ListSchemasRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{SchemaOut, quote_ident};
use crate::server::PgMcp;
use crate::tools::{catalog_deadline, error_result, output_schema, parse_args, structured_result};

/// Arguments of `list_schemas`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSchemasArgs {
    /// Also list the system schemas `pg_catalog` and `information_schema`. Default false.
    #[serde(default)]
    pub include_system: bool,
    /// Database to look at; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `list_schemas`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListSchemasOut {
    /// The database that answered.
    pub database: String,
    /// Schemas in name order.
    pub schemas: Vec<SchemaOut>,
}

#[tool_router(router = list_schemas_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "list_schemas",
        description = "List the schemas (namespaces) of a database: name, owner, comment, how many tables, views \
and other relations each holds, and whether it is on the search_path (its tables can then be named without the \
schema). System schemas (pg_catalog, information_schema) are left out unless include_system is true. \
Start here to see how a database is organised, then call list_tables for a schema's tables and describe_table \
for one table's columns and keys. Answers come from a short-lived cache of the catalog, so a schema created \
elsewhere in the last minute may not show yet.",
        input_schema = schema_for_type::<ListSchemasArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        output_schema = output_schema::<ListSchemasOut>(),
        annotations(title = "List schemas", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn list_schemas(&self, args: JsonObject) -> CallToolResult {
        let args: ListSchemasArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let req = ListSchemasRequest {
            database: args.database.unwrap_or_default(),
            include_system: args.include_system,
        };
        let deadline = catalog_deadline(&self.shared.limits);
        let res = self
            .shared
            .fleet
            .unary_read(
                req,
                deadline,
                |mut c, r| async move { c.list_schemas(r).await },
            )
            .await;
        match res {
            Ok(res) => {
                let out = ListSchemasOut {
                    database: res.database,
                    schemas: res.schemas.into_iter().map(SchemaOut::from).collect(),
                };
                let mut text = format!(
                    "{} schemas in database {}:",
                    out.schemas.len(),
                    out.database
                );
                for s in &out.schemas {
                    text.push_str(&format!(
                        "\n{} — {} relation{}, owner {}{}{}",
                        quote_ident(&s.name),
                        s.table_count,
                        if s.table_count == 1 { "" } else { "s" },
                        s.owner,
                        if s.on_search_path {
                            ", on search_path"
                        } else {
                            ""
                        },
                        s.comment
                            .as_deref()
                            .map(|c| format!(" — {c}"))
                            .unwrap_or_default()
                    ));
                }
                structured_result(text, &out)
            }
            Err(e) => error_result(&e, None),
        }
    }
}

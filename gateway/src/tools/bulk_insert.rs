//! `bulk_insert`: many rows into one table through COPY.

use pgmcp_proto::v1::BulkInsertRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;
use crate::fleet::Retry;
use crate::server::PgMcp;
use crate::tools::query::check_timeout;
use crate::tools::{call_deadline, error_result, parse_args, structured_result};

/// Arguments of `bulk_insert`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInsertArgs {
    /// Table to insert into, optionally schema-qualified (`orders`,
    /// `sales.orders`, `"Mixed Case"`).
    pub table: String,
    /// Columns to fill. Optional when rows are objects (their keys are used).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows: arrays of values in `columns` order, or objects keyed by column
    /// name. Strings use PostgreSQL's input format for the column's type.
    pub rows: Vec<serde_json::Value>,
    /// Timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to load into; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `bulk_insert`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkInsertOutput {
    /// The table, as PostgreSQL names it.
    pub table: String,
    /// Rows inserted.
    pub rows_inserted: u64,
}

#[tool_router(router = bulk_insert_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "bulk_insert",
        description = "Insert many rows into one table quickly (PostgreSQL COPY), all in one transaction: either \
every row goes in, or none does and the error names the failing row. Give `table`, `columns`, and `rows` as \
arrays in column order or as objects keyed by column name. Only on databases configured read-write. For a few \
rows or rows that need SQL expressions, use `execute` with INSERT instead.",
        input_schema = schema_for_type::<BulkInsertArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Write),
        output_schema = crate::tools::output_schema::<BulkInsertOutput>(),
        annotations(title = "Load rows into a table", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    pub async fn bulk_insert(&self, args: JsonObject) -> CallToolResult {
        let args: BulkInsertArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limits = &self.shared.limits;
        if args.rows.len() > limits.max_bulk_rows {
            return error_result(
                &GatewayError::invalid(format!(
                    "{} rows given, over this gateway's limit of {} rows per bulk_insert call \
                     (--max-bulk-rows); split the load into several calls, or an operator raises \
                     --max-bulk-rows",
                    args.rows.len(),
                    limits.max_bulk_rows
                )),
                None,
            );
        }
        let (columns, rows) = match rows_in_column_order(&args.columns, &args.rows) {
            Ok(x) => x,
            Err(e) => return error_result(&e, None),
        };
        let timeout_ms = match check_timeout(
            args.timeout_ms,
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let req = BulkInsertRequest {
            database: args.database.clone().unwrap_or_default(),
            table: args.table.clone(),
            columns,
            rows,
            timeout_ms,
        };
        let deadline = call_deadline(timeout_ms);
        let outcome = self
            .shared
            .fleet
            .unary(
                Retry::Never,
                req.clone(),
                deadline,
                |mut client, r| async move { client.bulk_insert(r).await },
            )
            .await;
        match outcome {
            Ok(resp) => {
                let text = format!("{} rows inserted into {}", resp.rows_inserted, resp.table);
                structured_result(
                    text,
                    &BulkInsertOutput {
                        table: resp.table,
                        rows_inserted: resp.rows_inserted,
                    },
                )
            }
            Err(e) => error_result(&e, None),
        }
    }
}

/// Rows (arrays or objects) → the column list and each row as a JSON array
/// in that order.
fn rows_in_column_order(
    columns: &[String],
    rows: &[serde_json::Value],
) -> Result<(Vec<String>, Vec<Vec<u8>>), GatewayError> {
    if rows.is_empty() {
        return Err(GatewayError::invalid("give at least one row"));
    }
    let columns: Vec<String> = if columns.is_empty() {
        match &rows[0] {
            serde_json::Value::Object(first) => first.keys().cloned().collect(),
            _ => return Err(GatewayError::invalid("give `columns` when rows are arrays")),
        }
    } else {
        columns.to_vec()
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let values: Vec<&serde_json::Value> = match row {
            serde_json::Value::Array(values) => {
                if values.len() != columns.len() {
                    return Err(GatewayError::invalid(format!(
                        "row {}: {} values for {} columns ({})",
                        i + 1,
                        values.len(),
                        columns.len(),
                        columns.join(", ")
                    )));
                }
                values.iter().collect()
            }
            serde_json::Value::Object(map) => {
                if let Some(extra) = map.keys().find(|k| !columns.contains(k)) {
                    return Err(GatewayError::invalid(format!(
                        "row {}: key `{extra}` is not one of the columns ({})",
                        i + 1,
                        columns.join(", ")
                    )));
                }
                columns
                    .iter()
                    .map(|c| map.get(c).unwrap_or(&serde_json::Value::Null))
                    .collect()
            }
            _ => {
                return Err(GatewayError::invalid(format!(
                    "row {}: expected an array of values or an object keyed by column",
                    i + 1
                )));
            }
        };
        out.push(serde_json::to_vec(&values).unwrap_or_default());
    }
    Ok((columns, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_follow_column_order() -> Result<(), GatewayError> {
        let (cols, rows) =
            rows_in_column_order(&[], &[json!({"a": 1, "b": "x"}), json!({"b": "y"})])?;
        assert_eq!(cols, ["a", "b"]);
        assert_eq!(rows[1], br#"[null,"y"]"#.to_vec());
        assert!(rows_in_column_order(&["a".into()], &[json!([1, 2])]).is_err());
        assert!(rows_in_column_order(&["a".into()], &[json!({"z": 1})]).is_err());
        Ok(())
    }
}

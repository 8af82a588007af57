//! MCP tools, one file each. Each file adds its own router to [`crate::server::PgMcp`].

pub mod batch_query;
pub mod bulk_insert;
pub mod execute;
pub mod explain;
pub mod query;
pub mod transaction;

use std::time::Duration;

use pgmcp_proto::v1::{Column, Param, StatementResult, TruncationReason, param};
use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;

/// Extra time the gateway waits beyond the statement timeout, so the
/// database's own timeout (with its clear error) fires first.
pub(crate) const DEADLINE_SLACK: Duration = Duration::from_millis(2_000);

/// A result column.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ColumnOut {
    /// Column name.
    pub name: String,
    /// PostgreSQL type name (`int4`, `text[]`, `timestamptz`, an enum's name …).
    #[serde(rename = "type")]
    pub type_name: String,
}

impl From<&Column> for ColumnOut {
    fn from(c: &Column) -> Self {
        ColumnOut {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
        }
    }
}

/// Why rows were left out of a result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Truncation {
    /// `max_rows` or `max_bytes`.
    pub reason: String,
    /// The row limit that applied.
    pub max_rows: u64,
    /// The byte limit that applied.
    pub max_bytes: u64,
    /// What to do to get the rest.
    pub note: String,
}

/// One SQL statement with its parameters, as tools take it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementArg {
    /// Exactly one SQL statement; `$1`, `$2`, … for parameters.
    pub sql: String,
    /// Values for `$1`, `$2`, … in order.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
}

impl StatementArg {
    pub(crate) fn to_proto(&self) -> pgmcp_proto::v1::Statement {
        pgmcp_proto::v1::Statement {
            sql: self.sql.clone(),
            params: to_params(&self.params),
        }
    }
}

/// What one statement did, as tools report it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatementOut {
    /// Rows inserted, updated, deleted or returned.
    pub rows_affected: u64,
    /// Columns of returned rows (RETURNING or SELECT); empty when none.
    pub columns: Vec<ColumnOut>,
    /// Returned rows, each an array of values in column order.
    pub rows: Vec<serde_json::Value>,
    /// True when returned rows were left out because of the limits.
    pub truncated: bool,
}

impl From<&StatementResult> for StatementOut {
    fn from(r: &StatementResult) -> Self {
        StatementOut {
            rows_affected: r.rows_affected,
            columns: r.columns.iter().map(ColumnOut::from).collect(),
            rows: rows_json(&r.rows),
            truncated: r.truncated,
        }
    }
}

/// Text for one statement's result: the rows (if any) and the count.
pub(crate) fn statement_text(r: &StatementResult) -> String {
    if r.columns.is_empty() {
        return format!(
            "{} row{} affected",
            r.rows_affected,
            if r.rows_affected == 1 { "" } else { "s" }
        );
    }
    let note = r.truncated.then(|| match TruncationReason::try_from(r.truncation_reason) {
        Ok(TruncationReason::MaxBytes) => "Returned rows were cut by the result byte limit (the statement itself ran completely).",
        _ => "Returned rows were cut at the row limit (the statement itself ran completely).",
    });
    let mut text = crate::render::table(&r.columns, &r.rows, r.rows.len() as u64, note);
    text.push_str(&format!(
        "
{} row{} affected",
        r.rows_affected,
        if r.rows_affected == 1 { "" } else { "s" }
    ));
    text
}

/// Worker rows (JSON arrays as bytes) → JSON values.
pub(crate) fn rows_json(rows: &[Vec<u8>]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| serde_json::from_slice(r).unwrap_or(serde_json::Value::Null))
        .collect()
}

/// A successful result: compact `text` for the model and `output` as
/// structured content.
pub(crate) fn structured_result<T: Serialize>(text: String, output: &T) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content =
        Some(serde_json::to_value(output).unwrap_or(serde_json::Value::Null));
    result
}

/// Parses a tool's arguments; a mismatch is a tool error the model can fix.
pub(crate) fn parse_args<T: DeserializeOwned>(
    args: rmcp::model::JsonObject,
) -> Result<T, GatewayError> {
    serde_json::from_value(serde_json::Value::Object(args))
        .map_err(|e| GatewayError::invalid(format!("invalid arguments: {e}")))
}

/// A failed call as a tool result (`isError: true`) with both the
/// explanation and the structured error.
pub(crate) fn error_result(err: &GatewayError, sql: Option<&str>) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(err.explain(sql))]);
    result.structured_content = Some(err.to_json());
    result
}

/// JSON values from the caller → typed wire parameters.
pub(crate) fn to_params(values: &[serde_json::Value]) -> Vec<Param> {
    values
        .iter()
        .map(|v| {
            let value = match v {
                serde_json::Value::Null => param::Value::Null(true),
                serde_json::Value::Bool(b) => param::Value::BoolValue(*b),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => param::Value::IntValue(i),
                    // Integers beyond i64 keep their digits.
                    (None, _) if n.is_u64() => param::Value::TextValue(n.to_string()),
                    (None, Some(f)) => param::Value::FloatValue(f),
                    (None, None) => param::Value::TextValue(n.to_string()),
                },
                serde_json::Value::String(s) => param::Value::TextValue(s.clone()),
                other => param::Value::JsonValue(other.to_string()),
            };
            Param { value: Some(value) }
        })
        .collect()
}

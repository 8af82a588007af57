//! MCP tools, one file each. Each file adds its own router to [`crate::server::PgMcp`].
//!
//! Shared here: argument parsing ([`parse_args`]: tolerant of stringified
//! JSON, strict about unknown fields and types), the output schema every
//! tool with structured results advertises ([`output_schema`]), and how
//! results and failures become tool results.

pub mod analyze_table;
pub mod batch_query;
pub mod bulk_insert;
pub mod database_health;
pub mod describe_table;
pub mod execute;
pub mod explain;
pub mod fleet_status;
pub mod invalidate_schema_cache;
pub mod list_databases;
pub mod list_schemas;
pub mod list_tables;
mod maintenance;
pub mod query;
pub mod top_queries;
pub mod transaction;
pub mod vacuum_table;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{Column, Param, StatementResult, TruncationReason, param};
use rmcp::handler::server::common::{schema_for_output, schema_for_type};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call;
use crate::errors::GatewayError;
use crate::server::PgMcp;

/// Extra time the gateway waits beyond the statement timeout, so the
/// database's own timeout (with its clear error) fires first.
pub(crate) const DEADLINE_SLACK: Duration = Duration::from_millis(2_000);

/// How long a call with statement timeout `timeout_ms` may take in all.
pub(crate) fn call_deadline(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(timeout_ms)) + DEADLINE_SLACK
}

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

/// Parses a tool's arguments; a mismatch is a tool error the model can fix.
///
/// Object and array arguments that arrive as strings holding JSON (some
/// clients send `"params": "[1, 2]"`) are decoded first, wherever `T`'s
/// schema expects an object or array and does not accept a string. Unknown
/// fields and wrong types are errors that show the expected shape.
pub(crate) fn parse_args<T: DeserializeOwned + JsonSchema + 'static>(
    args: JsonObject,
) -> Result<T, GatewayError> {
    let root = input_schema::<T>();
    let root = root.as_ref();
    let mut value = Value::Object(args);
    coerce(&mut value, root, root, 0);
    serde_json::from_value(value).map_err(|e| {
        GatewayError::invalid(format!(
            "invalid arguments: {e}. Expected arguments: {}",
            shape(root, root, 0)
        ))
    })
}

/// `T`'s input schema as a JSON value, made once per type (not per call).
fn input_schema<T: JsonSchema + 'static>() -> Arc<Value> {
    static SCHEMAS: OnceLock<RwLock<HashMap<TypeId, Arc<Value>>>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(schema) = schemas.read().ok().and_then(|s| s.get(&id).cloned()) {
        return schema;
    }
    let schema = Arc::new(Value::Object((*schema_for_type::<T>()).clone()));
    if let Ok(mut s) = schemas.write() {
        s.insert(id, schema.clone());
    }
    schema
}

/// How deep into nested schemas coercion and shapes go.
const MAX_DEPTH: usize = 8;

/// Follows a local `$ref` (`#/$defs/Name`).
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The alternatives of a schema: its `anyOf`/`oneOf` branches, or itself.
fn branches<'a>(schema: &'a Value, root: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(schema, root);
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            return list.iter().map(|s| resolve(s, root)).collect();
        }
    }
    vec![schema]
}

/// JSON types a schema accepts; empty when it does not say (anything goes).
fn accepted_types(schema: &Value, root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for b in branches(schema, root) {
        match b.get("type") {
            Some(Value::String(t)) => out.push(t.clone()),
            Some(Value::Array(ts)) => {
                out.extend(ts.iter().filter_map(|t| t.as_str().map(String::from)))
            }
            _ if b.get("properties").is_some() => out.push("object".into()),
            _ if b.get("enum").is_some() || b.get("const").is_some() => out.push("string".into()),
            _ => return Vec::new(),
        }
    }
    out
}

/// Decodes strings holding JSON where the schema wants an object or array.
fn coerce(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let types = accepted_types(schema, root);
    if let Value::String(s) = value
        && !types.iter().any(|t| t == "string")
    {
        let wants_object = types.iter().any(|t| t == "object");
        let wants_array = types.iter().any(|t| t == "array");
        if (wants_object || wants_array)
            && let Ok(parsed) = serde_json::from_str::<Value>(s.trim())
            && ((parsed.is_object() && wants_object) || (parsed.is_array() && wants_array))
        {
            *value = parsed;
        }
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let property = branches(schema, root)
                    .into_iter()
                    .find_map(|b| b.get("properties").and_then(|p| p.get(key)));
                if let Some(p) = property {
                    coerce(v, p, root, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            let item = branches(schema, root)
                .into_iter()
                .find_map(|b| b.get("items"));
            if let Some(item) = item {
                for v in items {
                    coerce(v, item, root, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A compact description of what a schema accepts, for error messages:
/// `{sql: string (required), params: array, max_rows: integer}`.
fn shape(schema: &Value, root: &Value, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "…".into();
    }
    let alternatives: Vec<String> = branches(schema, root)
        .into_iter()
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        .map(|b| shape_one(b, root, depth))
        .collect();
    match alternatives.as_slice() {
        [] => "null".into(),
        [one] => one.clone(),
        several => several.join(" or "),
    }
}

fn shape_one(schema: &Value, root: &Value, depth: usize) -> String {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(Value::to_string)
            .collect();
        return values.join(" | ");
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Required fields first, then the rest, each group in name order.
        let mut props: Vec<(&String, &Value)> = props.iter().collect();
        props.sort_by_key(|(name, _)| !required.contains(&name.as_str()));
        let fields: Vec<String> = props
            .into_iter()
            .map(|(name, p)| {
                let req = if required.contains(&name.as_str()) {
                    " (required)"
                } else {
                    ""
                };
                format!("{name}: {}{req}", shape(p, root, depth + 1))
            })
            .collect();
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        return format!(
            "{{{}}}{}",
            fields.join(", "),
            if closed { " and no other fields" } else { "" }
        );
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let types: Vec<String> = types
        .into_iter()
        .filter(|t| *t != "null")
        .map(|t| match (t, schema.get("items")) {
            ("array", Some(items)) if items.is_object() => {
                format!("array of {}", shape(items, root, depth + 1))
            }
            (t, _) => t.to_string(),
        })
        .collect();
    if types.is_empty() {
        "any JSON value".into()
    } else {
        types.join(" or ")
    }
}

/// The shape of `structuredContent` of a failed call (`isError: true`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorOutput {
    pub error: ErrorBody,
}

/// What went wrong, as in [`GatewayError::to_json`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Error category, e.g. `undefined_object`, `syntax`, `invalid_request`.
    pub kind: String,
    pub message: String,
    /// True when the same call may simply be sent again.
    pub retry_safe: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

/// The `outputSchema` of a tool whose results are `T`: the fields of a `T`
/// and, for a failed call, `error` (`{"kind", "message", …}`, see
/// [`ErrorOutput`]), so clients that validate `structuredContent` accept
/// both.
///
/// Output schemas were the bulk of `tools/list`, which every client puts in
/// front of the model, so they say only which fields exist and their types:
/// [`compact`] drops descriptions (the tool description and the text result
/// say it for the model) and `required` lists (a failed call carries only
/// `error`).
pub(crate) fn output_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut out = Value::Object((*schema_for_output::<T>()).clone());
    // Nested objects are named by their field and typed, not spelled out:
    // the model sees their fields in every result (docs/tools.md lists them).
    let defs = out
        .as_object_mut()
        .and_then(|o| o.remove("$defs"))
        .unwrap_or(Value::Null);
    inline_refs(&mut out, &defs, 0);
    if let Some(props) = out.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("error".into(), serde_json::json!({"type": "object"}));
    }
    compact(&mut out, Schema::Output);
    match out {
        Value::Object(o) => Arc::new(o),
        _ => Arc::new(JsonObject::new()),
    }
}

/// Replaces each `{"$ref": "#/$defs/X"}` by the JSON type of `X` (an
/// object's fields are not repeated; an enum keeps its values).
fn inline_refs(schema: &mut Value, defs: &Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                let def = &defs[name];
                let mut short = JsonObject::new();
                for key in ["type", "enum"] {
                    if let Some(v) = def.get(key) {
                        short.insert(key.into(), v.clone());
                    }
                }
                // A documented enum: `oneOf` of `const`s.
                let consts: Option<Vec<Value>> = def
                    .get("oneOf")
                    .or(def.get("anyOf"))
                    .and_then(Value::as_array)
                    .and_then(|b| b.iter().map(|v| v.get("const").cloned()).collect());
                if short.is_empty()
                    && let Some(consts) = consts
                {
                    short.insert("enum".into(), Value::Array(consts));
                }
                if short.is_empty() {
                    // Something else: spelled out after all.
                    let mut full = def.clone();
                    inline_refs(&mut full, defs, depth + 1);
                    *schema = full;
                } else {
                    *map = short;
                }
                return;
            }
            for v in map.values_mut() {
                inline_refs(v, defs, depth + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                inline_refs(v, defs, depth + 1);
            }
        }
        _ => {}
    }
}

/// Which side of a tool a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// `inputSchema`: argument descriptions stay, they tell the model how
    /// to call.
    Input,
    /// `outputSchema`: field names and types only.
    Output,
}

/// Removes from a schema what a model does not need: `$schema` (2020-12 is
/// the MCP default), `title`, `format` (an annotation only), `minimum: 0`
/// of unsigned integers; in input schemas, `null` as an alternative type of
/// optional arguments (leaving an argument out says the same); in output
/// schemas, every `description` and `required`. Keys of `properties` and
/// `$defs` are names, not keywords, and are kept.
pub(crate) fn compact(schema: &mut Value, side: Schema) {
    compact_at(schema, side, 0);
}

fn compact_at(schema: &mut Value, side: Schema, depth: usize) {
    if depth > 64 {
        return;
    }
    match schema {
        Value::Object(map) => {
            map.remove("$schema");
            map.remove("title");
            map.remove("format");
            if map.get("minimum") == Some(&Value::from(0)) {
                map.remove("minimum");
            }
            match side {
                Schema::Output => {
                    map.remove("description");
                    map.remove("required");
                }
                Schema::Input => {
                    if let Some(Value::Array(types)) = map.get("type")
                        && types.len() == 2
                        && types.iter().any(|t| t == "null")
                        && let Some(other) = types.iter().find(|t| *t != "null").cloned()
                    {
                        map.insert("type".into(), other);
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                if key == "properties" || key == "$defs" {
                    if let Value::Object(named) = value {
                        for v in named.values_mut() {
                            compact_at(v, side, depth + 1);
                        }
                    }
                } else if key != "default" && key != "enum" && key != "const" {
                    compact_at(value, side, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                compact_at(v, side, depth + 1);
            }
        }
        _ => {}
    }
}

/// A successful result: `text` for the model, `value` as `structuredContent`.
pub(crate) fn structured_result<T: Serialize>(text: String, value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(v);
            result
        }
        Err(e) => error_result(
            &GatewayError::new(
                pgmcp_proto::error::ErrorKind::Internal,
                format!("cannot encode the result: {e}"),
            ),
            None,
        ),
    }
}

/// A failed call as a tool result (`isError: true`) with both the
/// explanation and the structured error, which carries the call's
/// `request_id` (and `trace_id` when the call is traced). Internal errors are
/// logged and masked: the caller sees only the ids under which the operators
/// find the details in logs and traces.
pub(crate) fn error_result(err: &GatewayError, sql: Option<&str>) -> CallToolResult {
    let ctx = call::current();
    let request_id = ctx
        .as_ref()
        .map(|c| c.request_id.as_str())
        .unwrap_or("none");
    let trace_id = pgmcp_telemetry::propagation::current_trace_id();
    let masked;
    let err = if matches!(err.kind(), ErrorKind::Internal | ErrorKind::Unspecified) {
        tracing::error!(request_id, error = %err.0.message, "internal error in a tool call");
        let trace = trace_id
            .as_deref()
            .map(|t| format!(", trace id {t}"))
            .unwrap_or_default();
        masked = GatewayError::new(
            err.kind(),
            format!(
                "internal error (request id {request_id}{trace}); the details are in the gateway's and workers' logs under this id"
            ),
        );
        &masked
    } else {
        err
    };
    let mut result = CallToolResult::error(vec![ContentBlock::text(err.explain(sql))]);
    let mut json = err.to_json();
    if ctx.is_some() {
        json["error"]["request_id"] = serde_json::json!(request_id);
    }
    if let Some(t) = trace_id {
        json["error"]["trace_id"] = serde_json::json!(t);
    }
    result.structured_content = Some(json);
    result
}

impl crate::server::PgMcp {
    /// After DDL: every worker drops its cached catalog of `database`, so
    /// introspection everywhere sees the change. Best effort: a worker that
    /// misses it catches up when its cache's TTL runs out.
    pub(crate) async fn schema_changed(&self, database: &str) {
        let results = self
            .shared
            .fleet
            .invalidate_schema_cache(database, Duration::from_secs(2))
            .await;
        for (worker, r) in results {
            if let Err(e) = r {
                tracing::warn!(%worker, error = %e, "could not invalidate a worker's schema cache");
            }
        }
    }
}

/// How long a catalog call (introspection, completion, resources) may
/// take: the default statement timeout plus time for the round trip.
pub(crate) fn catalog_deadline(limits: &crate::config::Limits) -> Duration {
    call_deadline(limits.default_timeout_ms)
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        sql: String,
        #[serde(default)]
        params: Vec<Value>,
    }

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Args {
        sql: String,
        #[serde(default)]
        params: Vec<Value>,
        items: Option<Vec<Item>>,
        options: Option<std::collections::BTreeMap<String, i64>>,
        limit: Option<u32>,
    }

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn stringified_json_is_decoded_where_objects_or_arrays_are_expected() {
        let args: Result<Args, _> = parse_args(obj(json!({
            "sql": "[1]",
            "params": "[1, \"a\", {\"k\": 2}]",
            "items": "[{\"sql\": \"SELECT 1\", \"params\": \"[true]\"}]",
            "options": "{\"x\": 1}"
        })));
        let args = args.map_err(|e| e.to_string());
        assert_eq!(
            args,
            Ok(Args {
                sql: "[1]".into(),
                params: vec![json!(1), json!("a"), json!({"k": 2})],
                items: Some(vec![Item {
                    sql: "SELECT 1".into(),
                    params: vec![json!(true)]
                }]),
                options: Some([("x".to_string(), 1)].into_iter().collect()),
                limit: None,
            })
        );
    }

    #[test]
    fn errors_show_the_expected_shape() {
        let err = parse_args::<Args>(obj(json!({"sql": "x", "bogus": 1})))
            .err()
            .map(|e| e.0.message)
            .unwrap_or_default();
        assert!(
            err.starts_with("invalid arguments: unknown field `bogus`"),
            "{err}"
        );
        assert!(err.contains("sql: string (required)"), "{err}");
        assert!(
            err.contains("items: array of {sql: string (required), params: array"),
            "{err}"
        );
        let err = parse_args::<Args>(obj(json!({"sql": "x", "limit": "ten"})))
            .err()
            .map(|e| e.0.message)
            .unwrap_or_default();
        assert!(err.contains("invalid type: string \"ten\""), "{err}");
        assert!(err.contains("limit: integer"), "{err}");
        // A string that is not JSON stays a string, and the error says so.
        let err = parse_args::<Args>(obj(json!({"sql": "x", "params": "[1,"})))
            .err()
            .map(|e| e.0.message)
            .unwrap_or_default();
        assert!(err.contains("expected a sequence"), "{err}");
    }

    #[test]
    fn output_schema_accepts_results_and_errors() {
        let schema = Value::Object((*output_schema::<Item>()).clone());
        // The result's fields and `error`, none required, no prose.
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "sql": {"type": "string"},
                    "params": {"type": "array", "items": true, "default": []},
                    "error": {"type": "object"}
                }
            })
        );
    }
}

/// Arguments of a tool that takes none: anything else is an error.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

impl PgMcp {
    /// A call's statement timeout: the default when not given, else checked
    /// against the gateway's limit.
    pub(crate) fn timeout_ms(&self, asked: Option<u32>) -> Result<u32, GatewayError> {
        let limits = &self.shared.limits;
        query::check_timeout(asked, limits.default_timeout_ms, limits.max_timeout_ms)
    }
}

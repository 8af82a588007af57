//! MCP tools, one file each. Each file adds its own router to [`crate::server::PgMcp`].

pub mod analyze_table;
pub mod database_health;
pub mod fleet_status;
pub mod list_databases;
mod maintenance;
pub mod query;
pub mod top_queries;
pub mod vacuum_table;

use std::sync::Arc;

use pgmcp_proto::v1::{Param, param};
use rmcp::handler::server::common::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errors::GatewayError;
use crate::server::PgMcp;

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

/// Arguments of a tool that takes none: anything else is an error.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// A successful result: `text` for the model, `value` as structuredContent.
pub(crate) fn success<T: Serialize>(text: String, value: &T) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(serde_json::to_value(value).unwrap_or_default());
    result
}

/// `outputSchema` of a tool whose successful structuredContent is a `T`:
/// either `T` or the `{"error": {"kind", "message", …}}` object of
/// [`error_result`], since clients validate the structuredContent of failed
/// calls too. Kept compact, since every listed tool costs the model
/// context: no `format`/`minimum` annotations, no type-level descriptions
/// (field descriptions stay).
pub(crate) fn output_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut ok = (*schema_for_output::<T>()).clone();
    ok.remove("$schema");
    let defs = ok.remove("$defs");
    let error = serde_json::json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["kind", "message"],
            "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}
        }}
    });
    let mut root = JsonObject::new();
    root.insert("type".into(), "object".into());
    root.insert(
        "anyOf".into(),
        serde_json::Value::Array(vec![serde_json::Value::Object(ok), error]),
    );
    if let Some(serde_json::Value::Object(mut defs)) = defs {
        for def in defs.values_mut() {
            if let serde_json::Value::Object(d) = def {
                d.remove("description");
            }
        }
        root.insert("$defs".into(), serde_json::Value::Object(defs));
    }
    let mut root = serde_json::Value::Object(root);
    compact(&mut root);
    match root {
        serde_json::Value::Object(o) => Arc::new(o),
        _ => Arc::new(JsonObject::new()),
    }
}

/// Drops annotations that do not change what validates for a model's
/// purposes (`format`, `minimum: 0`), recursing through subschemas.
fn compact(schema: &mut serde_json::Value) {
    let serde_json::Value::Object(o) = schema else {
        return;
    };
    o.remove("format");
    if o.get("minimum") == Some(&serde_json::json!(0)) {
        o.remove("minimum");
    }
    for key in ["properties", "$defs"] {
        if let Some(serde_json::Value::Object(map)) = o.get_mut(key) {
            map.values_mut().for_each(compact);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(serde_json::Value::Array(list)) = o.get_mut(key) {
            list.iter_mut().for_each(compact);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = o.get_mut(key) {
            compact(sub);
        }
    }
}

impl PgMcp {
    /// A call's statement timeout: the default when not given, else checked
    /// against the gateway's limit.
    pub(crate) fn timeout_ms(&self, asked: Option<u32>) -> Result<u32, GatewayError> {
        let limits = &self.shared.limits;
        match asked {
            None => Ok(limits.default_timeout_ms),
            Some(0) => Err(GatewayError::invalid("timeout_ms must be at least 1")),
            Some(t) if t > limits.max_timeout_ms => Err(GatewayError::invalid(format!(
                "timeout_ms is {t}, over the limit of {} ms",
                limits.max_timeout_ms
            ))),
            Some(t) => Ok(t),
        }
    }
}

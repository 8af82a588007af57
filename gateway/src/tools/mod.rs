//! MCP tools, one file each. Each file adds its own router to [`crate::server::PgMcp`].

pub mod query;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{Param, param};
use rmcp::model::{CallToolResult, ContentBlock};
use serde::de::DeserializeOwned;

use crate::call;
use crate::errors::GatewayError;

/// Parses a tool's arguments; a mismatch is a tool error the model can fix.
pub(crate) fn parse_args<T: DeserializeOwned>(
    args: rmcp::model::JsonObject,
) -> Result<T, GatewayError> {
    serde_json::from_value(serde_json::Value::Object(args))
        .map_err(|e| GatewayError::invalid(format!("invalid arguments: {e}")))
}

/// A failed call as a tool result (`isError: true`) with both the
/// explanation and the structured error, which carries the call's
/// `request_id`. Internal errors are logged and masked: the caller sees only
/// the request id under which the operators find the details.
pub(crate) fn error_result(err: &GatewayError, sql: Option<&str>) -> CallToolResult {
    let ctx = call::current();
    let request_id = ctx
        .as_ref()
        .map(|c| c.request_id.as_str())
        .unwrap_or("none");
    let masked;
    let err = if matches!(err.kind(), ErrorKind::Internal | ErrorKind::Unspecified) {
        tracing::error!(request_id, error = %err.0.message, "internal error in a tool call");
        masked = GatewayError::new(
            err.kind(),
            format!(
                "internal error (request id {request_id}); the details are in the gateway's and workers' logs under this id"
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
    result.structured_content = Some(json);
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

//! MCP resources served by the gateway, one file each. [`schema`] serves the
//! `schema://` templates over tables; the others offer `static_resources()`
//! (what `resources/list` shows) and `read(uri, fleet)` (`None` when the URI
//! is not their own).

pub mod fleet;
pub mod history;
pub mod schema;

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource};

use crate::fleet::Fleet;

/// Resources with a fixed URI.
pub fn static_resources() -> Vec<Resource> {
    let mut all = history::static_resources();
    all.extend(fleet::static_resources());
    all
}

/// Reads `uri`, or `None` when no resource here has that URI.
pub async fn read(uri: &str, fleet: &Fleet) -> Option<Result<ReadResourceResult, ErrorData>> {
    if let Some(r) = history::read(uri, fleet).await {
        return Some(r);
    }
    fleet::read(uri, fleet).await
}

/// A JSON document as a resource's contents.
fn json_contents(uri: &str, value: &serde_json::Value) -> Result<ReadResourceResult, ErrorData> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ErrorData::internal_error(format!("cannot encode {uri}: {e}"), None))?;
    Ok(ReadResourceResult::new(vec![
        rmcp::model::ResourceContents::text(text, uri).with_mime_type("application/json"),
    ]))
}

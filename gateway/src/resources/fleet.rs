//! `stats://fleet`: the `fleet_status` document as a resource.

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource};

use crate::fleet::Fleet;
use crate::tools::fleet_status;

pub const URI: &str = "stats://fleet";

pub fn static_resources() -> Vec<Resource> {
    vec![
        Resource::new(URI, "fleet-stats")
            .with_title("pgmcp fleet status")
            .with_description(
                "Workers behind this server: reachability, health, version, per-database connection pools \
                 (size, idle, in use, waiting, max) and the fleet's connections against each PostgreSQL \
                 server's max_connections. Same document as the fleet_status tool.",
            )
            .with_mime_type("application/json"),
    ]
}

pub async fn read(uri: &str, fleet: &Fleet) -> Option<Result<ReadResourceResult, ErrorData>> {
    if uri != URI {
        return None;
    }
    let status = fleet_status::snapshot(fleet).await;
    Some(
        serde_json::to_value(&status)
            .map_err(|e| ErrorData::internal_error(format!("cannot encode {URI}: {e}"), None))
            .and_then(|v| super::json_contents(URI, &v)),
    )
}

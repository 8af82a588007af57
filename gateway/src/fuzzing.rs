//! Entry points for fuzzing the gateway's decoders of untrusted input, shared
//! by the cargo-fuzz targets in `fuzz/` and the bounded fuzz test of this
//! crate (`tests/fuzzing.rs`). Not part of the gateway's API.
//!
//! Each entry point takes arbitrary bytes and must return, never panic:
//! every rejection is a [`GatewayError`] with a message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::cursor::{CursorKey, Page};
use crate::errors::GatewayError;
use crate::listing_cursor::ListingCursor;
use crate::tools;

/// What one input did: how many decodings accepted it and how many refused
/// it with an error.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: usize,
    pub rejected: usize,
}

impl Outcome {
    fn record<T>(&mut self, result: Result<T, GatewayError>) {
        match result {
            Ok(_) => self.accepted += 1,
            Err(e) => {
                // A refusal must explain itself.
                assert!(
                    !e.0.message.is_empty(),
                    "an error without a message ({:?})",
                    e.kind()
                );
                // Rendering the explanation must not panic either.
                let _ = e.explain(None);
                self.rejected += 1;
            }
        }
    }
}

/// Tool-argument decoding: `data` as the JSON arguments of every tool,
/// through the parser the tools use (`parse_args`: string-encoded JSON
/// coerced where the schema wants objects or arrays, unknown fields and
/// wrong types refused with the expected shape). Inputs that are not a JSON
/// object are what the MCP layer refuses before any tool sees them; they
/// count as one rejection.
pub fn arguments(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Ok(serde_json::Value::Object(args)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        out.rejected += 1;
        return out;
    };
    parse::<tools::query::QueryArgs>(&args, &mut out);
    parse::<tools::execute::ExecuteArgs>(&args, &mut out);
    parse::<tools::transaction::TransactionArgs>(&args, &mut out);
    parse::<tools::batch_query::BatchQueryArgs>(&args, &mut out);
    parse::<tools::explain::ExplainArgs>(&args, &mut out);
    parse::<tools::bulk_insert::BulkInsertArgs>(&args, &mut out);
    parse::<tools::list_schemas::ListSchemasArgs>(&args, &mut out);
    parse::<tools::list_tables::ListTablesArgs>(&args, &mut out);
    parse::<tools::describe_table::DescribeTableArgs>(&args, &mut out);
    parse::<tools::NoArgs>(&args, &mut out);
    parse::<tools::database_health::HealthArgs>(&args, &mut out);
    parse::<tools::top_queries::TopQueriesArgs>(&args, &mut out);
    parse::<tools::analyze_table::AnalyzeArgs>(&args, &mut out);
    parse::<tools::vacuum_table::VacuumArgs>(&args, &mut out);
    parse::<tools::invalidate_schema_cache::InvalidateSchemaCacheArgs>(&args, &mut out);
    out
}

fn parse<T: DeserializeOwned + JsonSchema + 'static>(args: &JsonObject, out: &mut Outcome) {
    out.record(tools::parse_args::<T>(args.clone()));
}

/// The key the cursor entry point signs and verifies with.
fn key() -> CursorKey {
    CursorKey::new(
        b"pgmcp fuzzing cursor key, not a secret".to_vec(),
        Duration::from_secs(3600),
    )
}

/// Cursor decoding: `data` as a pagination cursor (`query`'s signed
/// cursors: signature, then payload), as the payload of a correctly signed
/// cursor (to reach the decoding behind the signature), and as a listing
/// cursor of `list_tables` and `resources/list`.
pub fn cursor(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let text = String::from_utf8_lossy(data);
    let key = key();
    out.record(key.verify(&text));
    out.record(key.verify(&key.seal(data)));
    out.record(ListingCursor::decode(&text, "tables", "public|%"));
    out.record(ListingCursor::decode(&text, "resources", ""));
    out
}

/// Valid arguments of every tool, to mutate.
pub fn argument_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"sql":"SELECT * FROM orders WHERE id = $1","params":[42],"page_size":10,"timeout_ms":5000}"#,
        r#"{"cursor":"eyJ2IjoxfQ.c2ln","database":"app"}"#,
        r#"{"sql":"SELECT $1::jsonb","params":"[{\"a\":[1,2,null]}]","max_rows":5}"#,
        r#"{"sql":"UPDATE t SET n = n + 1 WHERE id = $1 RETURNING n","params":[1],"max_rows":100}"#,
        r#"{"statements":[{"sql":"INSERT INTO t VALUES ($1)","params":[1]},{"sql":"DELETE FROM t"}],"timeout_ms":1000}"#,
        r#"{"statements":"[{\"sql\":\"SELECT 1\"}]"}"#,
        r#"{"queries":[{"sql":"SELECT 1"},{"sql":"SELECT $1::text","params":["x"]}],"max_rows":3}"#,
        r#"{"sql":"SELECT * FROM t","analyze":true,"buffers":true,"params":[]}"#,
        r#"{"table":"public.t","columns":["id","note"],"rows":[[1,"a"],[2,null]]}"#,
        r#"{"include_system":false,"database":"app"}"#,
        r#"{"schema":"public","name_pattern":"order%","kinds":["table","view"],"page_size":50}"#,
        r#"{"table":"\"Sales\".\"Order Items\"","schema":"public"}"#,
        r#"{}"#,
        r#"{"database":"app","limit":10,"order_by":"total_time"}"#,
        r#"{"table":"orders","schema":"public","database":"app"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Valid cursors and cursor payloads, to mutate.
pub fn cursor_seeds() -> Vec<Vec<u8>> {
    let page = Page {
        v: 1,
        db: "app".into(),
        sql: "SELECT * FROM t ORDER BY id".into(),
        params: vec![serde_json::json!(1), serde_json::json!("x")],
        offset: 100,
        page_size: 100,
        // 2100-01-01: the payload seeds stay unexpired.
        exp: 4_102_444_800,
    };
    let signed = key().sign(page.clone());
    let payload = serde_json::to_vec(&page).unwrap_or_default();
    vec![
        signed.clone().into_bytes(),
        payload.clone(),
        URL_SAFE_NO_PAD.encode(&payload).into_bytes(),
        ListingCursor::new("tables", "public|%", "app", "public", "orders")
            .encode()
            .into_bytes(),
        ListingCursor::new("resources", "", "app", "Sales", "Order Items")
            .encode()
            .into_bytes(),
        signed.replace('.', "").into_bytes(),
    ]
}

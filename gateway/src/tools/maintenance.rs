//! What `analyze_table` and `vacuum_table` share: the `MaintainTable` call
//! and its result.

use pgmcp_proto::v1::{MaintainTableRequest, MaintenanceOperation, TableStats};
use rmcp::model::CallToolResult;
use schemars::JsonSchema;
use serde::Serialize;

use crate::fleet::Retry;
use crate::server::PgMcp;
use crate::tools::{call_deadline, error_result, structured_result};

/// The result of `analyze_table` and `vacuum_table`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Maintained {
    pub database: String,
    /// The table as PostgreSQL names it (quoted and schema-qualified as needed).
    pub table: String,
    /// The statement that ran.
    pub statement: String,
    pub duration_ms: u64,
    /// The table's statistics before and after.
    pub before: Stats,
    pub after: Stats,
}

/// A table's row in pg_stat_all_tables, and its size.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Stats {
    pub live_tuples: i64,
    pub dead_tuples: i64,
    /// ISO 8601 timestamps (UTC); null when never.
    pub last_vacuum: Option<String>,
    pub last_autovacuum: Option<String>,
    pub last_analyze: Option<String>,
    pub last_autoanalyze: Option<String>,
    /// Table, indexes and TOAST, in bytes.
    pub total_bytes: i64,
}

impl PgMcp {
    /// Runs `op` on `table` through a worker serving `database`.
    pub(crate) async fn maintain(
        &self,
        database: Option<String>,
        table: String,
        op: MaintenanceOperation,
        timeout_ms: Option<u32>,
    ) -> CallToolResult {
        let timeout_ms = match self.timeout_ms(timeout_ms) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let database = database.unwrap_or_default();
        let deadline = call_deadline(timeout_ms);
        // VACUUM and ANALYZE change the table: never sent to a second
        // worker after the first may have started them.
        let answer = self
            .shared
            .fleet
            .unary(
                Retry::Never,
                MaintainTableRequest {
                    database,
                    table,
                    operation: op as i32,
                    timeout_ms,
                },
                deadline,
                |mut client, r| async move { client.maintain_table(r).await },
            )
            .await;
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => return error_result(&e, None),
        };
        let before = stats(resp.before.unwrap_or_default());
        let after = stats(resp.after.unwrap_or_default());
        let text = format!(
            "{} on `{}` took {} ms. Live rows {} → {}, dead rows {} → {}; last analyze {}, last vacuum {}.",
            resp.statement,
            resp.database,
            resp.duration_ms,
            before.live_tuples,
            after.live_tuples,
            before.dead_tuples,
            after.dead_tuples,
            after.last_analyze.as_deref().unwrap_or("never"),
            after.last_vacuum.as_deref().unwrap_or("never"),
        );
        let out = Maintained {
            database: resp.database,
            table: resp.table,
            statement: resp.statement,
            duration_ms: resp.duration_ms,
            before,
            after,
        };
        structured_result(text, &out)
    }
}

fn stats(s: TableStats) -> Stats {
    let opt = |v: String| (!v.is_empty()).then_some(v);
    Stats {
        live_tuples: s.live_tuples,
        dead_tuples: s.dead_tuples,
        last_vacuum: opt(s.last_vacuum),
        last_autovacuum: opt(s.last_autovacuum),
        last_analyze: opt(s.last_analyze),
        last_autoanalyze: opt(s.last_autoanalyze),
        total_bytes: s.total_bytes,
    }
}

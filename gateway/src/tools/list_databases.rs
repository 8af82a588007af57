//! `list_databases`: the database targets served across the fleet, and
//! which workers serve each.

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use crate::server::PgMcp;
use crate::tools::fleet_status::{PROBE_TIMEOUT, mode_name};
use crate::tools::{NoArgs, error_result, output_schema, parse_args, structured_result};

/// The databases callers can name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Databases {
    /// One entry per target name, sorted by name.
    pub databases: Vec<DatabaseEntry>,
    /// Workers that did not answer; databases only they serve are missing.
    pub unreachable_workers: Vec<UnreachableWorker>,
    /// Inconsistencies worth fixing (the same name meaning different
    /// things on different workers).
    pub warnings: Vec<String>,
}

/// One database target.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DatabaseEntry {
    /// The value to pass as `database` to the other tools.
    pub name: String,
    /// `read-only` (only reads are possible) or `read-write`.
    pub mode: String,
    /// Database name on the PostgreSQL server.
    pub database: String,
    pub server_version: String,
    /// Workers serving it.
    pub workers: Vec<ServedBy>,
}

/// A worker serving a database.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServedBy {
    pub worker_id: String,
    pub url: String,
}

/// A worker that did not answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UnreachableWorker {
    pub url: String,
    pub error: String,
}

#[tool_router(router = list_databases_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "list_databases",
        description = "List the databases this server can query: for each, the name to pass as `database` to the other \
tools, whether it is read-only or read-write, the PostgreSQL database name and version, and which workers serve it. \
Call it first when you do not know which database to use, or when a tool says the database is unknown. \
Takes no arguments; reads no table data.",
        input_schema = schema_for_type::<NoArgs>(),
        meta = crate::auth::requires_fleet(crate::auth::Access::Read),
        output_schema = output_schema::<Databases>(),
        annotations(title = "List databases", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn list_databases(&self, args: JsonObject) -> CallToolResult {
        if let Err(e) = parse_args::<NoArgs>(args) {
            return error_result(&e, None);
        }
        let infos = self.shared.fleet.infos(PROBE_TIMEOUT).await;
        let mut databases: Vec<DatabaseEntry> = Vec::new();
        let mut unreachable = Vec::new();
        let mut warnings = Vec::new();
        for (url, info) in infos {
            let info = match info {
                Ok(i) => i,
                Err(e) => {
                    unreachable.push(UnreachableWorker {
                        url,
                        error: e.0.message.clone(),
                    });
                    continue;
                }
            };
            // Only the databases the caller may read.
            for t in info
                .targets
                .iter()
                .filter(|t| crate::call::may(crate::auth::Access::Read, &t.name))
            {
                let mode = mode_name(t.mode());
                let served_by = ServedBy {
                    worker_id: info.worker_id.clone(),
                    url: url.clone(),
                };
                match databases.iter_mut().find(|d| d.name == t.name) {
                    Some(d) => {
                        if d.mode != mode || d.database != t.database {
                            warnings.push(format!(
                                "`{}` is {} database `{}` on worker {} but {} database `{}` on worker {}; \
                                 calls may land on either: give the workers the same configuration",
                                t.name,
                                d.mode,
                                d.database,
                                d.workers.first().map_or("?", |w| w.worker_id.as_str()),
                                mode,
                                t.database,
                                info.worker_id
                            ));
                        }
                        d.workers.push(served_by);
                    }
                    None => databases.push(DatabaseEntry {
                        name: t.name.clone(),
                        mode: mode.into(),
                        database: t.database.clone(),
                        server_version: t.server_version.clone(),
                        workers: vec![served_by],
                    }),
                }
            }
        }
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        let out = Databases {
            databases,
            unreachable_workers: unreachable,
            warnings,
        };
        structured_result(render(&out), &out)
    }
}

fn render(d: &Databases) -> String {
    let mut out = String::new();
    if d.databases.is_empty() {
        out.push_str("No database is reachable.\n");
    }
    for db in &d.databases {
        let workers: Vec<&str> = db.workers.iter().map(|w| w.worker_id.as_str()).collect();
        out.push_str(&format!(
            "{} ({}; database `{}`, PostgreSQL {}; served by {})\n",
            db.name,
            db.mode,
            db.database,
            db.server_version,
            workers.join(", ")
        ));
    }
    for w in &d.unreachable_workers {
        out.push_str(&format!("Unreachable worker {}: {}\n", w.url, w.error));
    }
    for w in &d.warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out.trim_end().to_string()
}

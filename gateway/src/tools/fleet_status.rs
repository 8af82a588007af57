//! `fleet_status`: every worker's reachability, health, version and pool
//! state, and per PostgreSQL server the connections the fleet may open
//! against what the server allows. The same document is the `stats://fleet`
//! resource.

use std::collections::BTreeMap;
use std::time::Duration;

use pgmcp_proto::v1::{AccessMode, PoolStats, WorkerHealth};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use crate::fleet::Fleet;
use crate::server::PgMcp;
use crate::tools::{NoArgs, error_result, output_schema, parse_args, structured_result};

/// How long a worker has to answer `Info`.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The fleet as this gateway sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetStatus {
    /// Workers configured in this gateway, in configuration order.
    pub workers: Vec<WorkerStatus>,
    /// Per PostgreSQL server: connections the reachable workers may open
    /// against the server's `max_connections`.
    pub servers: Vec<ServerCapacity>,
    pub workers_total: usize,
    pub workers_reachable: usize,
    /// Things worth acting on, one sentence each; empty when all is well.
    pub warnings: Vec<String>,
}

/// One worker.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkerStatus {
    /// gRPC address the gateway uses.
    pub url: String,
    /// Whether the worker answered `Info`.
    pub reachable: bool,
    /// `serving`, `draining` (shutting down, refusing new calls) or
    /// `unreachable`.
    pub health: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// pgmcp version of the worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the worker could not be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub targets: Vec<TargetStatus>,
}

/// One database target of a worker.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TargetStatus {
    /// Target name (the `database` argument of the tools).
    pub name: String,
    /// `read-only` or `read-write`.
    pub mode: String,
    /// Database name on the server.
    pub database: String,
    pub server_version: String,
    /// Identifies the PostgreSQL server (system identifier and port).
    pub server_id: String,
    /// The pool calls borrow connections from.
    pub pool: Pool,
    /// The worker's extra connection for cancels and lookups.
    pub side_connection: Pool,
}

/// A connection pool's state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pool {
    /// Open connections.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Calls waiting for a free connection.
    pub waiting: u32,
    pub max_connections: u32,
    pub min_connections: u32,
}

/// Connections the fleet may open on one PostgreSQL server.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerCapacity {
    pub server_id: String,
    /// Target names on this server.
    pub databases: Vec<String>,
    /// PostgreSQL's `max_connections`.
    pub max_connections: u32,
    /// PostgreSQL's `superuser_reserved_connections`.
    pub superuser_reserved_connections: u32,
    /// Σ over reachable workers' targets on this server of pool
    /// max_connections plus the side connection.
    pub fleet_max_connections: u32,
    /// Connections the fleet has open there now.
    pub fleet_open_connections: u32,
    /// `ok`, or `warning` when the fleet may open more connections than the
    /// server gives ordinary roles.
    pub status: String,
    pub note: String,
}

#[tool_router(router = fleet_status_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "fleet_status",
        description = "Health of the pgmcp worker fleet behind this server: per worker its address, whether it answers, \
health (serving/draining), version and, per database, connection pool size, idle, in use, waiting callers and maximum; \
per PostgreSQL server, the connections the fleet may open against the server's max_connections, with warnings. \
Use it when calls fail with 'worker unavailable' or 'database busy', or to check capacity. For just the list of \
databases use list_databases. Takes no arguments; reads no table data.",
        input_schema = schema_for_type::<NoArgs>(),
        meta = crate::auth::requires_fleet(crate::auth::Access::Read),
        output_schema = output_schema::<FleetStatus>(),
        annotations(title = "Fleet status", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn fleet_status(&self, args: JsonObject) -> CallToolResult {
        if let Err(e) = parse_args::<NoArgs>(args) {
            return error_result(&e, None);
        }
        let status = snapshot(&self.shared.fleet).await;
        structured_result(render(&status), &status)
    }
}

/// Asks every worker for its `Info` and assembles the fleet's status.
pub(crate) async fn snapshot(fleet: &Fleet) -> FleetStatus {
    let infos = fleet.infos(PROBE_TIMEOUT).await;
    let mut workers = Vec::with_capacity(infos.len());
    let mut warnings = Vec::new();
    // server id → (max, reserved, fleet max, fleet open, target names)
    let mut servers: BTreeMap<String, (u32, u32, u32, u32, Vec<String>)> = BTreeMap::new();
    for (url, info) in infos {
        match info {
            Ok(info) => {
                let health = match info.health() {
                    WorkerHealth::Draining => "draining",
                    _ => "serving",
                };
                if health == "draining" {
                    warnings.push(format!(
                        "worker {} ({url}) is shutting down and refuses new calls",
                        info.worker_id
                    ));
                }
                let mut targets = Vec::with_capacity(info.targets.len());
                // Only the databases the caller may read (capacity sums too).
                for t in info
                    .targets
                    .iter()
                    .filter(|t| crate::call::may(crate::auth::Access::Read, &t.name))
                {
                    let pool = pool_of(t.pool.as_ref());
                    let side = pool_of(t.side.as_ref());
                    if pool.waiting > 0 {
                        warnings.push(format!(
                            "{} call(s) wait for a connection to `{}` on worker {}: its pool of {} is saturated",
                            pool.waiting, t.name, info.worker_id, pool.max_connections
                        ));
                    }
                    let e = servers.entry(t.server_id.clone()).or_insert((
                        t.server_max_connections,
                        t.server_reserved_connections,
                        0,
                        0,
                        Vec::new(),
                    ));
                    e.2 += pool.max_connections + side.max_connections;
                    e.3 += pool.size + side.size;
                    if !e.4.contains(&t.name) {
                        e.4.push(t.name.clone());
                    }
                    targets.push(TargetStatus {
                        name: t.name.clone(),
                        mode: mode_name(t.mode()).into(),
                        database: t.database.clone(),
                        server_version: t.server_version.clone(),
                        server_id: t.server_id.clone(),
                        pool,
                        side_connection: side,
                    });
                }
                workers.push(WorkerStatus {
                    url,
                    reachable: true,
                    health: health.into(),
                    worker_id: Some(info.worker_id),
                    version: Some(info.version),
                    error: None,
                    targets,
                });
            }
            Err(err) => {
                warnings.push(format!(
                    "worker {url} is unreachable ({}); calls go to the other workers",
                    err.0.message
                ));
                workers.push(WorkerStatus {
                    url,
                    reachable: false,
                    health: "unreachable".into(),
                    worker_id: None,
                    version: None,
                    error: Some(err.0.message.clone()),
                    targets: Vec::new(),
                });
            }
        }
    }
    let servers: Vec<ServerCapacity> = servers
        .into_iter()
        .map(|(server_id, (max, reserved, fleet_max, open, databases))| {
            let usable = max.saturating_sub(reserved);
            let over = fleet_max > usable;
            let note = if over {
                format!(
                    "the fleet may open up to {fleet_max} connections to this server ({}), which allows {usable} \
                     for ordinary roles (max_connections {max} minus {reserved} reserved for superusers), and other \
                     clients need connections too: lower the workers' --pool-max-connections, run fewer workers, \
                     or raise max_connections",
                    databases.join(", ")
                )
            } else {
                format!(
                    "the fleet may open up to {fleet_max} of the {usable} connections this server allows ordinary roles"
                )
            };
            if over {
                warnings.push(note.clone());
            }
            ServerCapacity {
                server_id,
                databases,
                max_connections: max,
                superuser_reserved_connections: reserved,
                fleet_max_connections: fleet_max,
                fleet_open_connections: open,
                status: if over { "warning" } else { "ok" }.into(),
                note,
            }
        })
        .collect();
    let reachable = workers.iter().filter(|w| w.reachable).count();
    FleetStatus {
        workers_total: workers.len(),
        workers_reachable: reachable,
        workers,
        servers,
        warnings,
    }
}

fn pool_of(p: Option<&PoolStats>) -> Pool {
    let p = p.cloned().unwrap_or_default();
    Pool {
        size: p.size,
        idle: p.idle,
        in_use: p.in_use,
        waiting: p.waiting,
        max_connections: p.max_connections,
        min_connections: p.min_connections,
    }
}

/// `read-only` / `read-write`.
pub(crate) fn mode_name(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::ReadWrite => "read-write",
        _ => "read-only",
    }
}

/// Compact text for the model.
fn render(s: &FleetStatus) -> String {
    let mut out = format!(
        "{} of {} worker(s) reachable\n",
        s.workers_reachable, s.workers_total
    );
    for w in &s.workers {
        match (&w.worker_id, &w.error) {
            (Some(id), _) => out.push_str(&format!(
                "- {id} at {} ({}, v{})\n",
                w.url,
                w.health,
                w.version.as_deref().unwrap_or("?")
            )),
            (None, err) => out.push_str(&format!(
                "- {}: unreachable ({})\n",
                w.url,
                err.as_deref().unwrap_or("no answer")
            )),
        }
        for t in &w.targets {
            out.push_str(&format!(
                "  {} ({}, PostgreSQL {}): pool {} open / {} idle / {} in use / {} waiting, max {}\n",
                t.name,
                t.mode,
                t.server_version,
                t.pool.size,
                t.pool.idle,
                t.pool.in_use,
                t.pool.waiting,
                t.pool.max_connections
            ));
        }
    }
    for srv in &s.servers {
        out.push_str(&format!(
            "server {} ({}): {}: {}\n",
            srv.server_id,
            srv.databases.join(", "),
            srv.status,
            srv.note
        ));
    }
    if !s.warnings.is_empty() {
        out.push_str("Warnings:\n");
        for w in &s.warnings {
            out.push_str(&format!("- {w}\n"));
        }
    }
    out.trim_end().to_string()
}

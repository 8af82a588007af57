//! `top_queries` (dba toolset): the costliest statements according to
//! pg_stat_statements, or how to enable the extension.

use pgmcp_proto::v1::{TopQueriesOrder, TopQueriesRequest};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;
use crate::server::PgMcp;
use crate::tools::{call_deadline, error_result, output_schema, parse_args, structured_result};

/// Most statements a call may ask for.
const MAX_LIMIT: u32 = 100;

/// How to rank statements.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// Total execution time over all calls: where the database spends its time.
    #[default]
    TotalTime,
    /// Mean time per call: the slowest statements.
    MeanTime,
    /// Number of calls: the most frequent statements.
    Calls,
}

/// Arguments of `top_queries`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopQueriesArgs {
    /// Ranking: `total_time` (default), `mean_time` or `calls`.
    #[serde(default)]
    pub order_by: OrderBy,
    /// How many statements to return. Default 10, at most 100.
    pub limit: Option<u32>,
    /// Database to look at; needed only when several databases are served.
    pub database: Option<String>,
}

/// The result of `top_queries`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TopQueries {
    pub database: String,
    /// False when pg_stat_statements cannot be read; `how_to_enable` says why
    /// and what to do.
    pub available: bool,
    pub order_by: OrderBy,
    pub queries: Vec<QueryStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how_to_enable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_version: Option<String>,
    /// True when the role sees only its own statements' texts (it lacks
    /// pg_read_all_stats).
    pub restricted: bool,
}

/// One normalized statement (constants replaced by $1, $2, …).
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueryStat {
    pub query: String,
    pub calls: u64,
    pub total_time_ms: f64,
    pub mean_time_ms: f64,
    pub max_time_ms: f64,
    pub rows: u64,
    /// Share of block reads served from shared buffers; null when it read none.
    pub cache_hit_ratio: Option<f64>,
    pub role: String,
    pub query_id: String,
}

#[tool_router(router = top_queries_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "top_queries",
        description = "The statements that cost a PostgreSQL database the most, from the pg_stat_statements extension: \
ranked by total time (default), mean time per call, or number of calls, with calls, times in ms, rows and cache hit \
ratio. Statement texts are normalized ($1 instead of constants). Use it to find what to optimize, then `explain` or \
database_health. When the extension is not installed or not loaded, the result says so (available=false) and how to \
enable it. Read-only.",
        input_schema = schema_for_type::<TopQueriesArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Dba),
        output_schema = output_schema::<TopQueries>(),
        annotations(title = "Top queries", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn top_queries(&self, args: JsonObject) -> CallToolResult {
        let args: TopQueriesArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limit = match args.limit {
            None => 10,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return error_result(
                    &GatewayError::invalid(format!(
                        "limit is {n}; ask for 1 to {MAX_LIMIT} statements"
                    )),
                    None,
                );
            }
        };
        let order = match args.order_by {
            OrderBy::TotalTime => TopQueriesOrder::TotalTime,
            OrderBy::MeanTime => TopQueriesOrder::MeanTime,
            OrderBy::Calls => TopQueriesOrder::Calls,
        };
        let database = args.database.unwrap_or_default();
        let deadline = call_deadline(self.shared.limits.default_timeout_ms);
        let answer = self
            .shared
            .fleet
            .unary_read(
                TopQueriesRequest {
                    database,
                    order_by: order as i32,
                    limit,
                },
                deadline,
                |mut client, r| async move { client.top_queries(r).await },
            )
            .await;
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => return error_result(&e, None),
        };
        let out = TopQueries {
            database: resp.database,
            available: resp.available,
            order_by: args.order_by,
            queries: resp
                .queries
                .into_iter()
                .map(|q| QueryStat {
                    query: q.query,
                    calls: q.calls,
                    total_time_ms: round3(q.total_exec_time_ms),
                    mean_time_ms: round3(q.mean_exec_time_ms),
                    max_time_ms: round3(q.max_exec_time_ms),
                    rows: q.rows,
                    cache_hit_ratio: (q.cache_hit_ratio >= 0.0).then(|| round3(q.cache_hit_ratio)),
                    role: q.role,
                    query_id: q.query_id,
                })
                .collect(),
            how_to_enable: (!resp.available).then_some(resp.unavailable_reason),
            extension_version: (!resp.extension_version.is_empty())
                .then_some(resp.extension_version),
            restricted: resp.restricted,
        };
        structured_result(render(&out), &out)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn render(t: &TopQueries) -> String {
    if !t.available {
        return format!(
            "pg_stat_statements is not available in database `{}`: {}",
            t.database,
            t.how_to_enable.as_deref().unwrap_or("")
        );
    }
    if t.queries.is_empty() {
        return format!(
            "pg_stat_statements has recorded no statement in database `{}` yet.",
            t.database
        );
    }
    let mut out = String::from("calls | total ms | mean ms | rows | query\n");
    for q in &t.queries {
        let text: String = q.query.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "{} | {:.1} | {:.3} | {} | {}\n",
            q.calls, q.total_time_ms, q.mean_time_ms, q.rows, text
        ));
    }
    if t.restricted {
        out.push_str(
            "(the role lacks pg_read_all_stats: other roles' statement texts are hidden)\n",
        );
    }
    out.trim_end().to_string()
}

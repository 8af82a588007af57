//! `query`: one read-only SQL statement, with paging.

use pgmcp_proto::v1::{QueryRequest, TruncationReason};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cursor::Page;
use crate::errors::GatewayError;
use crate::fleet::QueryOutcome;
use crate::render;
use crate::server::PgMcp;
use crate::tools::{
    ColumnOut, Truncation, call_deadline, error_result, parse_args, rows_json, structured_result,
    to_params,
};

/// Arguments of `query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    /// Exactly one SQL statement, e.g. `SELECT * FROM orders WHERE customer_id = $1`.
    /// It runs in a read-only transaction. May be omitted when `cursor` is given.
    pub sql: Option<String>,
    /// Values for `$1`, `$2`, … in order. Strings, numbers, booleans and null;
    /// JSON objects/arrays for json/jsonb or array parameters. PostgreSQL
    /// infers each parameter's type from the statement.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Rows per page (default 100). When more rows exist, the result has
    /// `next_cursor`.
    pub page_size: Option<u64>,
    /// Same as `page_size` (kept for callers that think in row limits).
    pub max_rows: Option<u64>,
    /// `next_cursor` of the previous page, to get the next one. The cursor
    /// carries the statement and parameters; anything else given must match.
    pub cursor: Option<String>,
    /// Statement timeout in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to query; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `query`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueryOutput {
    /// Result columns with their PostgreSQL types.
    pub columns: Vec<ColumnOut>,
    /// Rows, each an array of values in column order.
    pub rows: Vec<serde_json::Value>,
    /// Rows in this page.
    pub row_count: u64,
    /// Rows of the result before this page.
    pub offset: u64,
    /// True when more rows exist than this page holds.
    pub truncated: bool,
    /// Why and where the page was cut, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[tool_router(router = query_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "query",
        description = "Run one read-only SQL statement (SELECT, WITH, VALUES, SHOW, TABLE …) and return its rows. \
Use $1, $2, … placeholders with `params` instead of putting values into the SQL. The statement runs in a \
read-only transaction that is rolled back, so it cannot change anything (use `execute` for writes). Results come \
in pages of `page_size` rows (default 100); when more rows exist the result says `truncated` and gives \
`next_cursor`: call `query` again with just `cursor` to get the next page. Each page re-runs the statement, so \
use ORDER BY for stable pages. Prefer aggregates and LIMIT over paging through large tables.",
        input_schema = schema_for_type::<QueryArgs>(),
        output_schema = crate::tools::output_schema::<QueryOutput>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        annotations(title = "Run a read-only SQL query", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn query(&self, args: JsonObject) -> CallToolResult {
        let args: QueryArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let page = match self.page_for(&args) {
            Ok(p) => p,
            Err(e) => return error_result(&e, None),
        };
        if let Err(e) =
            crate::limits::check_statement(&page.sql, page.params.len(), &self.shared.limits)
        {
            return error_result(&e, None);
        };
        let limits = &self.shared.limits;
        let timeout_ms = match check_timeout(
            args.timeout_ms,
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let req = QueryRequest {
            database: page.db.clone(),
            sql: page.sql.clone(),
            params: to_params(&page.params),
            max_rows: page.page_size,
            max_bytes: limits.max_result_bytes,
            timeout_ms,
            skip_rows: page.offset,
        };
        let deadline = call_deadline(timeout_ms);
        match self.shared.fleet.query(req, deadline).await {
            Ok(out) => self.page_result(out, page),
            Err(e) => error_result(&e, Some(&page.sql)),
        }
    }
}

impl PgMcp {
    /// The page to serve: from the cursor, or the first page of `sql`.
    fn page_for(&self, args: &QueryArgs) -> Result<Page, GatewayError> {
        let limits = &self.shared.limits;
        if let Some(cursor) = &args.cursor {
            let page = self.shared.cursors.verify(cursor)?;
            let differs = args
                .sql
                .as_ref()
                .is_some_and(|s| s.trim() != page.sql.trim())
                || (!args.params.is_empty() && args.params != page.params)
                || args.database.as_ref().is_some_and(|d| *d != page.db);
            if differs {
                return Err(GatewayError::invalid(
                    "the cursor belongs to a different query (its SQL, params or database differ); \
                     pass only `cursor` to continue, or drop it to start a new query",
                ));
            }
            return Ok(page);
        }
        let Some(sql) = args.sql.clone() else {
            return Err(GatewayError::invalid(
                "give `sql` (or `cursor` to continue a previous query)",
            ));
        };
        let page_size = match args.page_size.or(args.max_rows) {
            None => limits.default_max_rows,
            Some(0) => return Err(GatewayError::invalid("page_size must be at least 1")),
            Some(n) if n > limits.max_rows => {
                return Err(GatewayError::invalid(format!(
                    "page_size is {n}, over the limit of {}; ask for fewer rows per page and use next_cursor",
                    limits.max_rows
                )));
            }
            Some(n) => n,
        };
        Ok(Page {
            v: 1,
            db: args.database.clone().unwrap_or_default(),
            sql,
            params: args.params.clone(),
            offset: 0,
            page_size,
            exp: 0,
        })
    }

    fn page_result(&self, out: QueryOutcome, page: Page) -> CallToolResult {
        let reason = TruncationReason::try_from(out.summary.truncation_reason)
            .unwrap_or(TruncationReason::Unspecified);
        let row_count = out.summary.row_count;
        let next_cursor = (out.summary.truncated && row_count > 0).then(|| {
            self.shared.cursors.sign(Page {
                offset: page.offset + row_count,
                ..page.clone()
            })
        });
        let truncation = out.summary.truncated.then(|| {
            let note = match (reason, &next_cursor) {
                (TruncationReason::MaxBytes, Some(_)) => format!(
                    "Page cut at {row_count} rows by the {}-byte result limit; more rows exist. \
                     Call query with cursor=next_cursor for the next page, or select fewer columns.",
                    out.summary.max_bytes
                ),
                (TruncationReason::MaxBytes, None) => format!(
                    "A single row is larger than the {}-byte result limit; select fewer or smaller columns.",
                    out.summary.max_bytes
                ),
                _ => format!(
                    "Page of {row_count} rows (page_size={}); more rows exist. Call query with cursor=next_cursor \
                     for the next page, or narrow the query (WHERE, LIMIT, aggregates).",
                    page.page_size
                ),
            };
            Truncation {
                reason: if reason == TruncationReason::MaxBytes { "max_bytes" } else { "max_rows" }.to_string(),
                max_rows: page.page_size,
                max_bytes: out.summary.max_bytes,
                note,
            }
        });
        // Each row is parsed once, for both the text and structuredContent.
        let rows = rows_json(&out.rows);
        let mut text = render::table_values(
            &out.columns,
            &rows,
            row_count,
            truncation.as_ref().map(|t| t.note.as_str()),
        );
        if let Some(c) = &next_cursor {
            text.push_str("\nnext_cursor: ");
            text.push_str(c);
        }
        let output = QueryOutput {
            columns: out.columns.iter().map(ColumnOut::from).collect(),
            rows: Vec::new(),
            row_count,
            offset: page.offset,
            truncated: out.summary.truncated,
            truncation,
            next_cursor,
        };
        let mut result = structured_result(text, &output);
        // The rows move in rather than being serialized into a copy.
        if let Some(serde_json::Value::Object(content)) = result.structured_content.as_mut() {
            content.insert("rows".into(), serde_json::Value::Array(rows));
        }
        result
    }
}

/// The timeout a call asked for, after defaults and limits.
pub(crate) fn check_timeout(
    asked: Option<u32>,
    default: u32,
    max: u32,
) -> Result<u32, GatewayError> {
    match asked {
        None => Ok(default),
        Some(0) => Err(GatewayError::invalid("timeout_ms must be at least 1")),
        Some(t) if t > max => Err(GatewayError::invalid(format!(
            "timeout_ms is {t}, over the limit of {max} ms (--max-timeout-ms); \
             pass a smaller timeout_ms, or an operator raises --max-timeout-ms on the gateway"
        ))),
        Some(t) => Ok(t),
    }
}

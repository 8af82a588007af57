//! `list_tables`: the tables, views and other relations of a database, a
//! page at a time.

use pgmcp_proto::v1::ListTablesRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Kind, TableOut};
use crate::errors::GatewayError;
use crate::listing_cursor::ListingCursor;
use crate::server::PgMcp;
use crate::tools::{catalog_deadline, error_result, output_schema, parse_args, structured_result};

/// Tables per page unless the caller asks otherwise.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most tables per page.
const MAX_PAGE_SIZE: u32 = 1000;

/// Arguments of `list_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTablesArgs {
    /// Only tables in this schema, e.g. `public`. Default: every schema except
    /// the system ones.
    pub schema: Option<String>,
    /// Only tables whose name matches, ignoring case. `%` matches any run of
    /// characters and `_` one character, as in SQL LIKE (`order%`); text
    /// without wildcards matches names containing it (`order`).
    pub name_pattern: Option<String>,
    /// Only these kinds of relation. Default: all kinds.
    pub kinds: Option<Vec<Kind>>,
    /// Also list the tables and views of pg_catalog and information_schema
    /// (when no schema is given). Default false.
    #[serde(default)]
    pub include_system: bool,
    /// Tables per page: default 100, at most 1000.
    pub page_size: Option<u32>,
    /// `next_cursor` from the previous page, to continue the listing.
    pub cursor: Option<String>,
    /// Database to look at; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `list_tables`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListTablesOut {
    /// The database that answered.
    pub database: String,
    /// This page, in (schema, name) order.
    pub tables: Vec<TableOut>,
    /// How many tables match the filters, over all pages.
    pub total: u64,
    /// Present when more tables follow: pass it as `cursor` (with the same
    /// other arguments) to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[tool_router(router = list_tables_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "list_tables",
        description = "List the tables, views, materialized views, foreign tables and partitioned tables of a \
database, with their kind, estimated row count, size on disk and comment. Filter by schema, by name pattern \
(case-insensitive; `%` and `_` wildcards as in SQL LIKE, or plain text to match names containing it) and by kind. \
Results come in pages of page_size (default 100) in schema/name order; when `next_cursor` is present, call again \
with the same arguments and cursor=next_cursor for the next page. Each table's `sql_name` is the name to write \
in SQL (quoted where needed). Use describe_table for a table's columns, keys and indexes. Row counts are \
PostgreSQL's estimates; use query with count(*) for exact numbers. Answers come from a short-lived cache of the \
catalog, so a table created elsewhere in the last minute may not show yet.",
        input_schema = schema_for_type::<ListTablesArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Read),
        output_schema = output_schema::<ListTablesOut>(),
        annotations(title = "List tables", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn list_tables(&self, args: JsonObject) -> CallToolResult {
        match self.list_tables_inner(args).await {
            Ok(r) => r,
            Err(e) => error_result(&e, None),
        }
    }
}

impl PgMcp {
    async fn list_tables_inner(&self, args: JsonObject) -> Result<CallToolResult, GatewayError> {
        let args: ListTablesArgs = parse_args(args)?;
        let page_size = match args.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(0) => return Err(GatewayError::invalid("page_size must be at least 1")),
            Some(n) if n > MAX_PAGE_SIZE => {
                return Err(GatewayError::invalid(format!(
                    "page_size is {n}, over the limit of {MAX_PAGE_SIZE}; use a smaller page and follow next_cursor"
                )));
            }
            Some(n) => n,
        };
        let kinds: Vec<Kind> = args.kinds.clone().unwrap_or_default();
        let filters = format!(
            "{:?}|{:?}|{:?}|{:?}|{}",
            args.database, args.schema, args.name_pattern, kinds, args.include_system
        );
        let cursor = match &args.cursor {
            Some(c) => Some(ListingCursor::decode(c, "tables", &filters)?),
            None => None,
        };
        let database = match (&args.database, &cursor) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => c.d.clone(),
            (None, None) => String::new(),
        };
        let req = ListTablesRequest {
            database,
            schema: args.schema.clone().unwrap_or_default(),
            name_pattern: args.name_pattern.clone().unwrap_or_default(),
            kinds: kinds.iter().map(|k| k.to_proto() as i32).collect(),
            include_system: args.include_system,
            limit: page_size,
            after_schema: cursor.as_ref().map(|c| c.s.clone()).unwrap_or_default(),
            after_name: cursor.as_ref().map(|c| c.t.clone()).unwrap_or_default(),
        };
        let deadline = catalog_deadline(&self.shared.limits);
        let res = self
            .shared
            .fleet
            .unary_read(
                req,
                deadline,
                |mut c, r| async move { c.list_tables(r).await },
            )
            .await?;
        let next_cursor = match (res.has_more, res.tables.last()) {
            (true, Some(last)) => Some(
                ListingCursor::new("tables", &filters, &res.database, &last.schema, &last.name)
                    .encode(),
            ),
            _ => None,
        };
        let out = ListTablesOut {
            tables: res
                .tables
                .into_iter()
                .map(|t| TableOut::new(&res.database, t))
                .collect(),
            database: res.database,
            total: res.total,
            next_cursor,
        };
        let mut text = if out.tables.is_empty() {
            format!(
                "No tables match in database {} (total {}).",
                out.database, out.total
            )
        } else {
            format!(
                "{} of {} matching tables in database {}:",
                out.tables.len(),
                out.total,
                out.database
            )
        };
        for t in &out.tables {
            text.push('\n');
            text.push_str(&t.line());
        }
        if let Some(c) = &out.next_cursor {
            text.push_str(&format!(
                "\nMore tables follow: call list_tables again with the same arguments and cursor=\"{c}\"."
            ));
        }
        Ok(structured_result(text, &out))
    }
}

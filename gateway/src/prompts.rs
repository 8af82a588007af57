//! Prompts that help a model work with a database: explore it, answer a
//! question with SQL, make a slow query faster.
//!
//! `explore_database` embeds a live overview (schemas and the first tables)
//! from the workers' cached catalogs; the others are instructions that point
//! at the right tools in the right order.

use pgmcp_proto::v1::{ListSchemasRequest, ListTablesRequest};
use rmcp::ErrorData;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, ListPromptsResult, Prompt, PromptArgument,
    PromptMessage, Role,
};

use crate::catalog::{TableOut, quote_ident};
use crate::errors::GatewayError;
use crate::server::PgMcp;
use crate::tools::catalog_deadline;

/// The prompts' names.
pub const NAMES: [&str; 3] = ["explore_database", "write_query", "optimize_query"];

/// Tables shown in `explore_database`'s overview.
const OVERVIEW_TABLES: u32 = 100;

fn database_argument() -> PromptArgument {
    PromptArgument::new("database")
        .with_description("Database to work with; needed only when several databases are served")
        .with_required(false)
}

pub fn list() -> ListPromptsResult {
    ListPromptsResult::with_all_items(vec![
        Prompt::new(
            "explore_database",
            Some(
                "Get to know a database: an overview of its schemas and tables, and a plan to map \
                 its entities and relationships with list_tables, describe_table and query.",
            ),
            Some(vec![database_argument()]),
        )
        .with_title("Explore a database"),
        Prompt::new(
            "write_query",
            Some(
                "Answer a question with SQL: find the relevant tables, check their columns and \
                 foreign keys, write and run one read-only query, and answer from its result.",
            ),
            Some(vec![
                PromptArgument::new("question")
                    .with_description("The question to answer from the data")
                    .with_required(true),
                database_argument(),
            ]),
        )
        .with_title("Answer a question with SQL"),
        Prompt::new(
            "optimize_query",
            Some(
                "Make a slow query faster: read its plan, check the tables' indexes and sizes, and \
                 propose rewrites and indexes with the reasoning behind them.",
            ),
            Some(vec![
                PromptArgument::new("sql")
                    .with_description("The SQL statement to optimize")
                    .with_required(true),
                database_argument(),
            ]),
        )
        .with_title("Optimize a query"),
    ])
}

pub async fn get(mcp: &PgMcp, req: GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
    let arg = |name: &str| -> Option<String> {
        req.arguments
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(|v| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
            .filter(|s| !s.trim().is_empty())
    };
    let required = |name: &str| {
        arg(name).ok_or_else(|| {
            ErrorData::invalid_params(
                format!("prompt `{}` needs the argument `{name}`", req.name),
                None,
            )
        })
    };
    let database = arg("database");
    let on = database
        .as_deref()
        .map(|d| format!(" `{d}`"))
        .unwrap_or_default();
    let db_arg = database
        .as_deref()
        .map(|d| format!(" (pass database=\"{d}\" to every tool)"))
        .unwrap_or_default();
    let (description, text) = match req.name.as_str() {
        "explore_database" => {
            let overview = match overview(mcp, database.as_deref()).await {
                Ok(o) => o,
                Err(e) => format!(
                    "(The overview could not be loaded: {}. Start with list_schemas.)",
                    e.0.message
                ),
            };
            (
                "Explore a database",
                format!(
                    "Explore the PostgreSQL database{on} with pgmcp's tools{db_arg} and build an \
accurate picture of what it holds before answering questions about it.\n\n{overview}\n\n\
Steps:\n\
1. Call describe_table on the central tables (those most referenced by foreign keys) to learn their \
columns, keys and relationships.\n\
2. Follow foreign_keys and referenced_by to map how the tables join.\n\
3. Look at a few rows with query (SELECT … LIMIT 5) and use aggregates (count, min, max, count \
DISTINCT) rather than reading many rows. Row counts above are estimates.\n\
4. Summarise: the main entities, how they relate (join keys), notable constraints, and anything \
surprising (empty tables, missing keys, odd types)."
                ),
            )
        }
        "write_query" => {
            let question = required("question")?;
            (
                "Answer a question with SQL",
                format!(
                    "Answer this question from the PostgreSQL database{on}{db_arg}:\n\n{question}\n\n\
Steps:\n\
1. Find the relevant tables with list_tables (use name_pattern to search) and call describe_table on \
each candidate for exact column names, types, and the foreign keys to join on.\n\
2. Write one read-only SQL statement. Pass values as params ($1, $2, …) instead of writing them into \
the SQL, and write names with capitals or spaces in double quotes (use each table's sql_name).\n\
3. Run it with query. If it fails, read the error: its hint suggests the closest existing names. \
Mind `truncated`: aggregate in SQL instead of reading many rows.\n\
4. Answer the question from the result and show the SQL you ran."
                ),
            )
        }
        "optimize_query" => {
            let sql = required("sql")?;
            (
                "Optimize a query",
                format!(
                    "Make this query on the PostgreSQL database{on} faster{db_arg}:\n\n```sql\n{}\n```\n\n\
Steps:\n\
1. Get its plan with the explain tool (or query with EXPLAIN (FORMAT JSON) …). Use analyze only for \
statements that are cheap enough to run. Look for sequential scans of large tables, estimates far from \
actual rows, sorts or hashes spilling to disk, and nested loops over many rows.\n\
2. Call describe_table on every table it reads: existing indexes, keys, row estimates and sizes.\n\
3. Propose concrete changes, most effective first: rewrites (sargable predicates, no functions on \
indexed columns, EXISTS instead of IN over large sets, keyset instead of OFFSET pagination) and \
indexes (the exact CREATE INDEX statement, and why it helps this plan). Say what each change costs \
(write overhead, size) and how to verify the gain with the plan.\n\
4. Do not change data or schema yourself.",
                    sql.trim_end()
                ),
            )
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("no prompt named `{other}`; available: {}", NAMES.join(", ")),
                None,
            ));
        }
    };
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(description),
    )
}

/// Schemas and the first tables of a database, as text.
async fn overview(mcp: &PgMcp, database: Option<&str>) -> Result<String, GatewayError> {
    let fleet = &mcp.shared.fleet;
    let deadline = catalog_deadline(&mcp.shared.limits);
    let database = crate::call::resolve(
        crate::auth::Access::Read,
        database.unwrap_or_default(),
        "explore_database",
    )?;
    let schemas = fleet
        .unary_read(
            ListSchemasRequest {
                database: database.clone(),
                include_system: false,
            },
            deadline,
            |mut c, r| async move { c.list_schemas(r).await },
        )
        .await?;
    let tables = fleet
        .unary_read(
            ListTablesRequest {
                database,
                limit: OVERVIEW_TABLES,
                ..ListTablesRequest::default()
            },
            deadline,
            |mut c, r| async move { c.list_tables(r).await },
        )
        .await?;
    let mut out = format!(
        "Database {}. Schemas: {}.",
        schemas.database,
        schemas
            .schemas
            .iter()
            .map(|s| format!("{} ({} relations)", quote_ident(&s.name), s.table_count))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str(&format!("\nTables ({}):", tables.total));
    let shown = tables.tables.len();
    for t in tables.tables {
        out.push_str("\n  ");
        out.push_str(&TableOut::new(&tables.database, t).line());
    }
    if tables.has_more {
        out.push_str(&format!(
            "\n  … {} more: use list_tables with schema or name_pattern to see them.",
            tables.total.saturating_sub(shown as u64)
        ));
    }
    Ok(out)
}

//! `completion/complete` for the `schema://` templates' `database`,
//! `schema` and `table` arguments and for the prompts' `database` and
//! `table` arguments.
//!
//! Values come from the workers' cached catalogs. A completion that cannot
//! be computed (a worker is down, a database is unknown) is an empty list:
//! completion is a convenience and must not get in the way.

use pgmcp_proto::v1::{ListSchemasRequest, ListTablesRequest};
use rmcp::ErrorData;
use rmcp::model::{CompleteRequestParams, CompleteResult, CompletionInfo, Reference};

use crate::errors::GatewayError;
use crate::resources::schema::{SCHEMA_TABLE_TEMPLATE, TABLE_TEMPLATE};
use crate::server::PgMcp;
use crate::tools::catalog_deadline;

/// Values per completion (the protocol's maximum).
const MAX_VALUES: usize = CompletionInfo::MAX_VALUES;

pub async fn complete(
    mcp: &PgMcp,
    req: CompleteRequestParams,
) -> Result<CompleteResult, ErrorData> {
    let arg = req.argument.name.as_str();
    let value = req.argument.value.as_str();
    let context = |name: &str| {
        req.context
            .as_ref()
            .and_then(|c| c.get_argument(name))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let kind = match &req.r#ref {
        Reference::Resource(r) if r.uri == SCHEMA_TABLE_TEMPLATE => Some(Scope::SchemaTable),
        Reference::Resource(r) if r.uri == TABLE_TEMPLATE => Some(Scope::Table),
        Reference::Prompt(p) if crate::prompts::NAMES.contains(&p.name.as_str()) => {
            Some(Scope::Table)
        }
        _ => None,
    };
    let Some(scope) = kind else {
        return Ok(CompleteResult::default());
    };
    let database = context("database").unwrap_or_default();
    // Schemas and tables only of a database the caller may read.
    let database = match crate::call::resolve(crate::auth::Access::Read, &database, "completion") {
        Ok(d) => d,
        Err(_) if arg == "database" => database,
        Err(_) => return Ok(CompleteResult::default()),
    };
    let outcome = match arg {
        "database" => databases(mcp, value).await,
        "schema" if scope == Scope::SchemaTable => schemas(mcp, &database, value).await,
        "table" => tables(mcp, &database, context("schema"), scope, value).await,
        _ => Ok(Completion::default()),
    };
    let completion = outcome.unwrap_or_else(|e| {
        tracing::debug!(error = %e, argument = arg, "no completion");
        Completion::default()
    });
    let info =
        CompletionInfo::with_pagination(completion.values, completion.total, completion.more)
            .unwrap_or_default();
    Ok(CompleteResult::new(info))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `schema://{database}/{table}` and prompts: tables named as SQL would
    /// name them, qualified when off the search path.
    Table,
    /// `schema://{database}/{schema}/{table}`: bare table names.
    SchemaTable,
}

#[derive(Default)]
struct Completion {
    values: Vec<String>,
    total: Option<u32>,
    more: bool,
}

impl Completion {
    fn from_sorted(mut values: Vec<String>) -> Self {
        let total = u32::try_from(values.len()).ok();
        let more = values.len() > MAX_VALUES;
        values.truncate(MAX_VALUES);
        Completion {
            values,
            total,
            more,
        }
    }
}

fn starts_with_ci(name: &str, prefix: &str) -> bool {
    name.to_lowercase().starts_with(&prefix.to_lowercase())
}

async fn databases(mcp: &PgMcp, prefix: &str) -> Result<Completion, GatewayError> {
    let names = mcp
        .shared
        .fleet
        .database_names(std::time::Duration::from_secs(2))
        .await;
    Ok(Completion::from_sorted(
        names
            .into_iter()
            .filter(|n| starts_with_ci(n, prefix))
            .filter(|n| crate::call::may(crate::auth::Access::Read, n))
            .collect(),
    ))
}

async fn schemas(mcp: &PgMcp, database: &str, prefix: &str) -> Result<Completion, GatewayError> {
    let req = ListSchemasRequest {
        database: database.to_string(),
        include_system: false,
    };
    let res = mcp
        .shared
        .fleet
        .unary_read(
            req,
            catalog_deadline(&mcp.shared.limits),
            |mut c, r| async move { c.list_schemas(r).await },
        )
        .await?;
    Ok(Completion::from_sorted(
        res.schemas
            .into_iter()
            .map(|s| s.name)
            .filter(|n| starts_with_ci(n, prefix))
            .collect(),
    ))
}

async fn tables(
    mcp: &PgMcp,
    database: &str,
    schema: Option<String>,
    scope: Scope,
    value: &str,
) -> Result<Completion, GatewayError> {
    // `sales.ord` completes tables of schema `sales` starting with `ord`.
    let (schema, prefix, qualify) = match (scope, schema, value.split_once('.')) {
        (Scope::SchemaTable, schema, _) => (schema, value, false),
        (Scope::Table, _, Some((s, t))) => (Some(s.to_string()), t, true),
        (Scope::Table, schema, None) => (schema, value, false),
    };
    let req = ListTablesRequest {
        database: database.to_string(),
        schema: schema.unwrap_or_default(),
        name_pattern: format!("{}%", escape_like(prefix)),
        limit: u32::try_from(MAX_VALUES).unwrap_or(100),
        ..ListTablesRequest::default()
    };
    let res = mcp
        .shared
        .fleet
        .unary_read(
            req,
            catalog_deadline(&mcp.shared.limits),
            |mut c, r| async move { c.list_tables(r).await },
        )
        .await?;
    let mut values: Vec<String> = res
        .tables
        .into_iter()
        .map(|t| {
            if scope == Scope::Table && (qualify || !t.on_search_path) {
                format!("{}.{}", t.schema, t.name)
            } else {
                t.name
            }
        })
        .collect();
    values.dedup();
    Ok(Completion {
        values,
        total: u32::try_from(res.total).ok(),
        more: res.has_more,
    })
}

/// Makes `text` match itself literally in a name pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_wildcards() {
        assert_eq!(escape_like("order_it%"), "order\\_it\\%");
        assert_eq!(escape_like("a\\b"), "a\\\\b");
    }
}

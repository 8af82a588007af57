//! Table descriptions as MCP resources.
//!
//! Templates `schema://{database}/{table}` and
//! `schema://{database}/{schema}/{table}` (each part percent-encoded);
//! `resources/list` pages through the tables of every database;
//! `resources/read` returns the table's description as JSON, the same
//! content as `describe_table`'s `structuredContent`.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{DescribeTableRequest, ListTablesRequest};
use rmcp::ErrorData;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};

use crate::catalog::TableOut;
use crate::errors::GatewayError;
use crate::listing_cursor::ListingCursor;
use crate::server::PgMcp;
use crate::tools::catalog_deadline;

/// A table of a database, its schema found along the search path.
pub const TABLE_TEMPLATE: &str = "schema://{database}/{table}";
/// A table of a schema of a database.
pub const SCHEMA_TABLE_TEMPLATE: &str = "schema://{database}/{schema}/{table}";
/// Resources per `resources/list` page.
const PAGE: usize = 100;
/// How long finding the served databases may take.
const DISCOVERY: Duration = Duration::from_secs(2);

pub fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(TABLE_TEMPLATE, "table")
            .with_title("Table description")
            .with_description(
                "Columns, keys, foreign keys, constraints, indexes and triggers of a table, as JSON \
                 (the same as describe_table). `table` is an exact name or a SQL name that may be \
                 schema-qualified (`public.users`); unqualified names are looked up along the \
                 search_path. Percent-encode each part.",
            )
            .with_mime_type("application/json"),
        ResourceTemplate::new(SCHEMA_TABLE_TEMPLATE, "schema-table")
            .with_title("Table description (schema-qualified)")
            .with_description(
                "Columns, keys, foreign keys, constraints, indexes and triggers of the table \
                 `table` in schema `schema`, as JSON (the same as describe_table). Names are \
                 exact; percent-encode each part.",
            )
            .with_mime_type("application/json"),
    ])
}

/// One page of the tables of every database, in (database, schema, name) order.
pub async fn list(mcp: &PgMcp, cursor: Option<String>) -> Result<ListResourcesResult, ErrorData> {
    let start = match cursor.as_deref() {
        Some(c) => Some(
            ListingCursor::decode(c, "resources", "")
                .map_err(|e| ErrorData::invalid_params(e.0.message.clone(), None))?,
        ),
        None => None,
    };
    let fleet = &mcp.shared.fleet;
    let deadline = catalog_deadline(&mcp.shared.limits);
    let mut databases = fleet.database_names(DISCOVERY).await;
    databases.retain(|d| crate::call::may(crate::auth::Access::Read, d));
    if let Some(c) = &start {
        databases.retain(|d| d >= &c.d);
    }
    let mut resources = Vec::new();
    let mut last: Option<(String, String, String)> = None;
    let mut more = false;
    for database in databases {
        let (after_schema, after_name) = match &start {
            Some(c) if c.d == database => (c.s.clone(), c.t.clone()),
            _ => (String::new(), String::new()),
        };
        let room = PAGE - resources.len();
        let req = ListTablesRequest {
            database: database.clone(),
            limit: u32::try_from(room).unwrap_or(1),
            after_schema,
            after_name,
            ..ListTablesRequest::default()
        };
        let res = fleet
            .unary_read(
                req,
                deadline,
                |mut c, r| async move { c.list_tables(r).await },
            )
            .await
            .map_err(|e| ErrorData::internal_error(e.explain(None), None))?;
        for t in res.tables {
            last = Some((database.clone(), t.schema.clone(), t.name.clone()));
            let entry = TableOut::new(&database, t);
            resources.push(
                Resource::new(entry.uri.clone(), entry.sql_name.clone())
                    .with_title(format!("{database}: {}", entry.sql_name))
                    .with_description(entry.line())
                    .with_mime_type("application/json"),
            );
        }
        if resources.len() >= PAGE {
            more = true;
            break;
        }
    }
    let mut result = ListResourcesResult::with_all_items(resources);
    if more && let Some((d, s, t)) = last {
        result.next_cursor = Some(ListingCursor::new("resources", "", &d, &s, &t).encode());
    }
    Ok(result)
}

/// A `schema://` URI's parts: database, optional schema, table.
pub fn parse_uri(uri: &str) -> Result<(String, Option<String>, String), GatewayError> {
    let bad = || {
        GatewayError::invalid(format!(
            "`{uri}` is not a table resource: use schema://{{database}}/{{table}} or \
             schema://{{database}}/{{schema}}/{{table}}, each part percent-encoded"
        ))
    };
    let rest = uri.strip_prefix("schema://").ok_or_else(bad)?;
    let parts: Vec<String> = rest
        .split('/')
        .map(|p| {
            percent_decode_str(p)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad())
        })
        .collect::<Result<_, _>>()?;
    if parts.iter().any(String::is_empty) {
        return Err(bad());
    }
    match <[String; 2]>::try_from(parts.clone()) {
        Ok([database, table]) => Ok((database, None, table)),
        Err(_) => match <[String; 3]>::try_from(parts) {
            Ok([database, schema, table]) => Ok((database, Some(schema), table)),
            Err(_) => Err(bad()),
        },
    }
}

/// The description of the table a `schema://` URI names, as JSON.
pub async fn read(mcp: &PgMcp, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let (database, schema, table) =
        parse_uri(uri).map_err(|e| ErrorData::invalid_params(e.0.message.clone(), None))?;
    let database = crate::call::resolve(crate::auth::Access::Read, &database, "schema resources")
        .map_err(|e| ErrorData::invalid_request(e.explain(None), Some(e.to_json())))?;
    let req = DescribeTableRequest {
        database,
        schema: schema.unwrap_or_default(),
        table,
    };
    let deadline = catalog_deadline(&mcp.shared.limits);
    match crate::tools::describe_table::describe(&mcp.shared.fleet, req, deadline).await {
        Ok(d) => {
            let json = serde_json::to_string_pretty(&d)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            Ok(ReadResourceResult::new(vec![
                ResourceContents::text(json, uri).with_mime_type("application/json"),
            ]))
        }
        Err(e) => Err(match e.kind() {
            ErrorKind::UndefinedObject | ErrorKind::UnknownDatabase => {
                ErrorData::resource_not_found(e.explain(None), Some(e.to_json()))
            }
            ErrorKind::InvalidRequest => {
                ErrorData::invalid_params(e.explain(None), Some(e.to_json()))
            }
            _ => ErrorData::internal_error(e.explain(None), Some(e.to_json())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        assert_eq!(
            parse_uri("schema://app/users").ok(),
            Some(("app".into(), None, "users".into()))
        );
        assert_eq!(
            parse_uri("schema://app/Sales/Order%20Items").ok(),
            Some(("app".into(), Some("Sales".into()), "Order Items".into()))
        );
        for bad in [
            "schema://app",
            "schema://app//t",
            "schema://a/b/c/d",
            "db://app/t",
            "schema://app/%FF",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }
}

//! The introspection RPCs (`ListSchemas`, `ListTables`, `DescribeTable`),
//! answered from the target's [`SchemaCache`](crate::schema_cache::SchemaCache).
//!
//! Filtering and paging happen in memory over the cached catalog, so a page
//! costs no database round trip while the cache is fresh. Pages are keyset
//! pages in (schema, name) order: a table created or dropped between two
//! pages neither shifts nor repeats the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{
    DescribeTableRequest, DescribeTableResponse, ListSchemasRequest, ListSchemasResponse,
    ListTablesRequest, ListTablesResponse, SchemaInfo, TableKind,
};
use tonic::Status;

use crate::error::WorkerError;
use crate::names::NamePattern;
use crate::targets::Target;

/// Tables per page when the request names no limit.
pub const DEFAULT_PAGE: u32 = 100;
/// Most tables per page.
pub const MAX_PAGE: u32 = 1000;
/// Longest name or pattern accepted, in characters.
const MAX_NAME_CHARS: usize = 1000;

/// Runs an introspection call in its own task, so a caller that goes away
/// cannot interrupt a transaction half-way (the statement timeout bounds
/// it), and turns its error into a status naming the target.
pub async fn spawn<T, F>(target: Arc<Target>, call: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: Future<Output = Result<T, WorkerError>> + Send + 'static,
{
    match tokio::spawn(call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.for_database(&target.name).into_status()),
        Err(e) => {
            tracing::error!(target = %target.name, error = %e, "introspection task failed");
            Err(WorkerError::new(
                ErrorKind::Internal,
                "internal error in the worker; see its logs",
            )
            .for_database(&target.name)
            .into_status())
        }
    }
}

pub async fn list_schemas(
    target: &Target,
    req: &ListSchemasRequest,
    timeout_ms: u32,
) -> Result<ListSchemasResponse, WorkerError> {
    let catalog = target.schema_cache.catalog(target, timeout_ms).await?;
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for r in &catalog.relations {
        *counts.entry(r.info.schema.as_str()).or_default() += 1;
    }
    let schemas = catalog
        .schemas
        .iter()
        .filter(|s| req.include_system || !s.system)
        .map(|s| SchemaInfo {
            name: s.name.clone(),
            owner: s.owner.clone(),
            comment: s.comment.clone(),
            system: s.system,
            table_count: counts.get(s.name.as_str()).copied().unwrap_or(0),
            on_search_path: catalog.on_search_path(&s.name),
        })
        .collect();
    Ok(ListSchemasResponse {
        schemas,
        database: target.name.clone(),
    })
}

pub async fn list_tables(
    target: &Target,
    req: &ListTablesRequest,
    timeout_ms: u32,
) -> Result<ListTablesResponse, WorkerError> {
    let limit = match req.limit {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(WorkerError::invalid(format!(
                "a page holds at most {MAX_PAGE} tables; {n} were asked for"
            )));
        }
        n => n,
    } as usize;
    let mut kinds = Vec::with_capacity(req.kinds.len());
    for k in &req.kinds {
        match TableKind::try_from(*k) {
            Ok(kind) if kind != TableKind::Unspecified => kinds.push(kind as i32),
            _ => return Err(WorkerError::invalid(format!("unknown table kind {k}"))),
        }
    }
    if req.name_pattern.chars().count() > MAX_NAME_CHARS {
        return Err(WorkerError::invalid(format!(
            "name_pattern is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    let pattern = (!req.name_pattern.is_empty()).then(|| NamePattern::new(&req.name_pattern));
    let catalog = target.schema_cache.catalog(target, timeout_ms).await?;
    let schema = if req.schema.is_empty() {
        None
    } else {
        Some(catalog.resolve_schema(&req.schema)?.name.clone())
    };
    let after = (!req.after_schema.is_empty() || !req.after_name.is_empty())
        .then_some((req.after_schema.as_str(), req.after_name.as_str()));
    let mut total = 0u64;
    let mut tables = Vec::new();
    let mut has_more = false;
    for r in &catalog.relations {
        let t = &r.info;
        let wanted = match &schema {
            Some(s) => &t.schema == s,
            None => req.include_system || catalog.schema(&t.schema).is_none_or(|s| !s.system),
        } && (kinds.is_empty() || kinds.contains(&t.kind))
            && pattern.as_ref().is_none_or(|p| p.matches(&t.name));
        if !wanted {
            continue;
        }
        total += 1;
        if after.is_some_and(|a| (t.schema.as_str(), t.name.as_str()) <= a) {
            continue;
        }
        if tables.len() < limit {
            tables.push(t.clone());
        } else {
            has_more = true;
        }
    }
    Ok(ListTablesResponse {
        tables,
        total,
        has_more,
        database: target.name.clone(),
    })
}

pub async fn describe_table(
    target: &Target,
    req: &DescribeTableRequest,
    timeout_ms: u32,
) -> Result<DescribeTableResponse, WorkerError> {
    if req.table.trim().is_empty() {
        return Err(WorkerError::invalid("the table name is empty"));
    }
    if req.table.chars().count() > MAX_NAME_CHARS || req.schema.chars().count() > MAX_NAME_CHARS {
        return Err(WorkerError::invalid(format!(
            "table and schema names are at most {MAX_NAME_CHARS} characters"
        )));
    }
    let schema = (!req.schema.is_empty()).then_some(req.schema.as_str());
    let d = target
        .schema_cache
        .describe(target, schema, &req.table, timeout_ms)
        .await?;
    Ok(DescribeTableResponse {
        table: Some((*d).clone()),
        database: target.name.clone(),
    })
}

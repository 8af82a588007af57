//! The `pgmcp.v1.Worker` gRPC service.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use pgmcp_proto::v1::worker_server::Worker;
use pgmcp_proto::v1::{
    BulkInsertRequest, BulkInsertResponse, DescribeTableRequest, DescribeTableResponse,
    ExecuteRequest, ExecuteResponse, ExplainRequest, ExplainResponse, InfoRequest, InfoResponse,
    InvalidateSchemaCacheRequest, InvalidateSchemaCacheResponse, ListSchemasRequest,
    ListSchemasResponse, ListTablesRequest, ListTablesResponse, QueryRequest, QueryResponse,
    TransactionRequest, TransactionResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::Limits;
use crate::error::WorkerError;
use crate::introspect;
use crate::query::{self, Effective};
use crate::targets::{Target, Targets};
use crate::{bulk_insert, execute, explain, statement, transaction};

/// Shared state of the service.
pub struct WorkerService {
    name: String,
    targets: Arc<Targets>,
    limits: Limits,
}

impl WorkerService {
    pub fn new(name: String, targets: Arc<Targets>, limits: Limits) -> Self {
        WorkerService {
            name,
            targets,
            limits,
        }
    }

    /// The target an introspection call is for, and its statement timeout:
    /// the worker's default, lowered to the call's remaining deadline.
    fn introspection<T>(
        &self,
        req: &Request<T>,
        database: &str,
    ) -> Result<(Arc<Target>, u32), Status> {
        let target = self
            .targets
            .get(database)
            .map_err(|e| e.into_status())?
            .clone();
        let mut timeout_ms = self.limits.default_timeout_ms;
        if let Some(d) = grpc_timeout(req.metadata()) {
            timeout_ms = timeout_ms.min(u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1));
        }
        Ok((target, timeout_ms))
    }

    fn target(&self, database: &str) -> Result<Arc<Target>, Status> {
        self.targets
            .get(database)
            .cloned()
            .map_err(|e| e.into_status())
    }
}

/// Sends a unary call's outcome, tagging errors with the target's name.
fn respond<T>(target: &Target, outcome: Result<T, WorkerError>) -> Result<Response<T>, Status> {
    match outcome {
        Ok(v) => Ok(Response::new(v)),
        Err(err) => {
            let err = err.for_database(&target.name);
            if err.kind() == pgmcp_proto::error::ErrorKind::Internal {
                tracing::error!(target = %target.name, error = %err, "call failed");
            }
            Err(err.into_status())
        }
    }
}

type QueryStream = Pin<Box<dyn Stream<Item = Result<QueryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(InfoResponse {
            worker_id: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            targets: self.targets.iter().map(|t| t.to_proto()).collect(),
        }))
    }

    type QueryStream = QueryStream;

    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<QueryStream>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self
            .targets
            .get(&req.database)
            .map_err(|e| e.into_status())?
            .clone();
        query::validate(&req, &self.limits)
            .map_err(|e| e.for_database(&target.name).into_status())?;
        let eff = Effective::new(&req, &self.limits, deadline);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(query::run(target, req, eff, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn execute(
        &self,
        req: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let stmt = req.statement.clone().unwrap_or_default();
        if let Err(e) = statement::check(&stmt.sql, &stmt.params, &self.limits) {
            return respond(&target, Err(e));
        }
        let eff = Effective::from_parts(
            req.max_rows,
            req.max_bytes,
            req.timeout_ms,
            &self.limits,
            deadline,
        );
        // Writes run to completion in their own task: a caller that goes
        // away does not cut a statement off between its effect and COMMIT.
        let task = tokio::spawn(execute::run(target.clone(), req, eff));
        respond(&target, joined(task.await))
    }

    async fn transaction(
        &self,
        req: Request<TransactionRequest>,
    ) -> Result<Response<TransactionResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let max = self.limits.max_transaction_statements;
        if req.statements.is_empty() {
            return respond(
                &target,
                Err(WorkerError::invalid("the transaction has no statements")),
            );
        }
        if req.statements.len() > max {
            return respond(
                &target,
                Err(WorkerError::invalid(format!(
                    "{} statements given, over this worker's limit of {max} per transaction (max_transaction_statements)",
                    req.statements.len()
                ))),
            );
        }
        for (i, s) in req.statements.iter().enumerate() {
            if let Err(mut e) = statement::check(&s.sql, &s.params, &self.limits) {
                e.0.statement_index = u32::try_from(i + 1).unwrap_or(u32::MAX);
                e.0.message = format!("statement {}: {}", i + 1, e.0.message);
                return respond(&target, Err(e));
            }
        }
        let eff = Effective::from_parts(
            req.max_rows,
            req.max_bytes,
            req.timeout_ms,
            &self.limits,
            deadline,
        );
        let task = tokio::spawn(transaction::run(target.clone(), req, eff));
        respond(&target, joined(task.await))
    }

    async fn explain(
        &self,
        req: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let stmt = req.statement.clone().unwrap_or_default();
        if let Err(e) = statement::check(&stmt.sql, &stmt.params, &self.limits) {
            return respond(&target, Err(e));
        }
        let eff = Effective::from_parts(0, 0, req.timeout_ms, &self.limits, deadline);
        let task = tokio::spawn(explain::run(target.clone(), req, eff));
        respond(&target, joined(task.await))
    }

    async fn bulk_insert(
        &self,
        req: Request<BulkInsertRequest>,
    ) -> Result<Response<BulkInsertResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let eff = Effective::from_parts(0, 0, req.timeout_ms, &self.limits, deadline);
        let task = tokio::spawn(bulk_insert::run(
            target.clone(),
            req,
            eff,
            self.limits.max_bulk_rows,
        ));
        respond(&target, joined(task.await))
    }

    async fn list_schemas(
        &self,
        req: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasResponse>, Status> {
        let (target, timeout_ms) = self.introspection(&req, &req.get_ref().database)?;
        let req = req.into_inner();
        let t = target.clone();
        introspect::spawn(target, async move {
            introspect::list_schemas(&t, &req, timeout_ms).await
        })
        .await
        .map(Response::new)
    }

    async fn list_tables(
        &self,
        req: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        let (target, timeout_ms) = self.introspection(&req, &req.get_ref().database)?;
        let req = req.into_inner();
        let t = target.clone();
        introspect::spawn(target, async move {
            introspect::list_tables(&t, &req, timeout_ms).await
        })
        .await
        .map(Response::new)
    }

    async fn describe_table(
        &self,
        req: Request<DescribeTableRequest>,
    ) -> Result<Response<DescribeTableResponse>, Status> {
        let (target, timeout_ms) = self.introspection(&req, &req.get_ref().database)?;
        let req = req.into_inner();
        let t = target.clone();
        introspect::spawn(target, async move {
            introspect::describe_table(&t, &req, timeout_ms).await
        })
        .await
        .map(Response::new)
    }

    async fn invalidate_schema_cache(
        &self,
        req: Request<InvalidateSchemaCacheRequest>,
    ) -> Result<Response<InvalidateSchemaCacheResponse>, Status> {
        let database = req.into_inner().database;
        let targets: Vec<&Arc<Target>> = if database.is_empty() {
            self.targets.iter().collect()
        } else {
            vec![self.targets.get(&database).map_err(|e| e.into_status())?]
        };
        for t in &targets {
            t.schema_cache.invalidate();
            tracing::info!(target = %t.name, "schema cache invalidated");
        }
        Ok(Response::new(InvalidateSchemaCacheResponse {
            databases: targets.iter().map(|t| t.name.clone()).collect(),
            worker_id: self.name.clone(),
        }))
    }
}

/// The outcome of a spawned call; a panicked task is an internal error.
fn joined<T>(r: Result<Result<T, WorkerError>, tokio::task::JoinError>) -> Result<T, WorkerError> {
    r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "call task failed");
        Err(WorkerError::new(
            pgmcp_proto::error::ErrorKind::Internal,
            "internal error in the worker; see its logs",
        ))
    })
}

/// The deadline the client sent in `grpc-timeout` (`<digits><unit>`).
fn grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeout() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert(
            "grpc-timeout",
            "300m".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(grpc_timeout(&md), Some(Duration::from_millis(300)));
        md.insert(
            "grpc-timeout",
            "2S".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(grpc_timeout(&md), Some(Duration::from_secs(2)));
    }
}

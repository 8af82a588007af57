//! The `pgmcp.v1.Worker` gRPC service.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::worker_server::Worker;
use pgmcp_proto::v1::{
    BulkInsertRequest, BulkInsertResponse, DatabaseHealthRequest, DatabaseHealthResponse,
    DescribeTableRequest, DescribeTableResponse, ExecuteRequest, ExecuteResponse, ExplainRequest,
    ExplainResponse, HistoryRequest, HistoryResponse, InfoRequest, InfoResponse,
    InvalidateSchemaCacheRequest, InvalidateSchemaCacheResponse, ListSchemasRequest,
    ListSchemasResponse, ListTablesRequest, ListTablesResponse, MaintainTableRequest,
    MaintainTableResponse, MaintenanceOperation, QueryRequest, QueryResponse, TopQueriesRequest,
    TopQueriesResponse, TransactionRequest, TransactionResponse, WorkerHealth,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::cancel::Watch;
use crate::config::Limits;
use crate::dba;
use crate::error::WorkerError;
use crate::history::{self, History};
use crate::introspect;
use crate::query::{self, Effective};
use crate::targets::{Target, Targets};
use crate::{bulk_insert, execute, explain, statement, transaction};

/// Shared state of the service.
pub struct WorkerService {
    name: String,
    targets: Arc<Targets>,
    limits: Limits,
    history: Arc<History>,
    /// Set once shutdown begins.
    draining: Arc<AtomicBool>,
}

impl WorkerService {
    pub fn new(
        name: String,
        targets: Arc<Targets>,
        limits: Limits,
        history: Arc<History>,
        draining: Arc<AtomicBool>,
    ) -> Self {
        WorkerService {
            name,
            targets,
            limits,
            history,
            draining,
        }
    }

    fn target(&self, database: &str) -> Result<Arc<Target>, Status> {
        self.targets
            .get(database)
            .cloned()
            .map_err(|e| e.into_status())
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
}

/// Runs a unary call's work in its own task, so that a caller going away
/// does not cut it off between two statements, and records it in the
/// history. If the caller goes away before the answer, the backends the work
/// holds are stopped and their connections closed (see `cancel.rs`).
async fn unary<T, F>(call: history::Call, database: &str, work: F) -> Result<Response<T>, Status>
where
    T: Send + 'static,
    F: Future<Output = Result<T, WorkerError>> + Send + 'static,
{
    let watch = Watch::new();
    let joined = tokio::spawn(watch.run(work.in_current_span())).await;
    watch.answered();
    let outcome = match joined {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a worker task failed");
            Err(WorkerError::new(
                ErrorKind::Internal,
                "internal error in the worker; see its logs",
            ))
        }
    };
    match outcome {
        Ok(resp) => {
            call.ok(0, false);
            Ok(Response::new(resp))
        }
        Err(err) => {
            let err = err.for_database(database);
            call.failed(&err.0);
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
            health: if self.draining.load(Ordering::Relaxed) {
                WorkerHealth::Draining
            } else {
                WorkerHealth::Serving
            } as i32,
        }))
    }

    async fn history(
        &self,
        req: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let limit = usize::try_from(req.into_inner().limit).unwrap_or(usize::MAX);
        Ok(Response::new(HistoryResponse {
            worker_id: self.name.clone(),
            entries: self.history.recent(limit),
            capacity: u32::try_from(self.history.capacity()).unwrap_or(u32::MAX),
            recorded: self.history.recorded(),
        }))
    }

    async fn database_health(
        &self,
        req: Request<DatabaseHealthRequest>,
    ) -> Result<Response<DatabaseHealthResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let timeout = dba::timeout_ms(req.timeout_ms, &self.limits, deadline);
        let call = self.history.start(
            &target.name,
            "database_health",
            "-- database_health: catalog and statistics checks",
            0,
        );
        let name = target.name.clone();
        unary(call, &name, async move {
            dba::health::run(&target, timeout).await
        })
        .await
    }

    async fn top_queries(
        &self,
        req: Request<TopQueriesRequest>,
    ) -> Result<Response<TopQueriesResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let timeout = dba::timeout_ms(0, &self.limits, deadline);
        let call = self.history.start(
            &target.name,
            "top_queries",
            "-- top_queries: pg_stat_statements",
            0,
        );
        let order = req.order_by();
        let name = target.name.clone();
        unary(call, &name, async move {
            dba::top_queries::run(&target, order, req.limit, timeout).await
        })
        .await
    }

    async fn maintain_table(
        &self,
        req: Request<MaintainTableRequest>,
    ) -> Result<Response<MaintainTableResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let timeout = dba::timeout_ms(req.timeout_ms, &self.limits, deadline);
        let op = req.operation();
        let verb = match op {
            MaintenanceOperation::Analyze => "ANALYZE",
            MaintenanceOperation::Vacuum => "VACUUM",
            MaintenanceOperation::VacuumAnalyze => "VACUUM (ANALYZE)",
            MaintenanceOperation::Unspecified => "--",
        };
        let operation = match op {
            MaintenanceOperation::Analyze => "analyze_table",
            _ => "vacuum_table",
        };
        let call = self
            .history
            .start(&target.name, operation, &format!("{verb} {}", req.table), 0);
        let name = target.name.clone();
        unary(call, &name, async move {
            dba::maintenance::run(&target, &req.table, op, timeout).await
        })
        .await
    }

    async fn execute(
        &self,
        req: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let stmt = req.statement.clone().unwrap_or_default();
        let call = self
            .history
            .start(&target.name, "execute", &stmt.sql, stmt.params.len());
        let limits = self.limits.clone();
        let eff = Effective::from_parts(
            req.max_rows,
            req.max_bytes,
            req.timeout_ms,
            &limits,
            deadline,
        );
        let name = target.name.clone();
        // Writes run to completion in their own task: a caller that goes
        // away does not cut a statement off between its effect and COMMIT.
        unary(call, &name, async move {
            statement::check(&stmt.sql, &stmt.params, &limits)?;
            execute::run(target, req, eff).await
        })
        .await
    }

    async fn transaction(
        &self,
        req: Request<TransactionRequest>,
    ) -> Result<Response<TransactionResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let summary: Vec<&str> = req.statements.iter().map(|s| s.sql.as_str()).collect();
        let params: usize = req.statements.iter().map(|s| s.params.len()).sum();
        let call = self
            .history
            .start(&target.name, "transaction", &summary.join(";\n"), params);
        let limits = self.limits.clone();
        let eff = Effective::from_parts(
            req.max_rows,
            req.max_bytes,
            req.timeout_ms,
            &limits,
            deadline,
        );
        let name = target.name.clone();
        unary(call, &name, async move {
            let max = limits.max_transaction_statements;
            if req.statements.is_empty() {
                return Err(WorkerError::invalid("the transaction has no statements"));
            }
            if req.statements.len() > max {
                return Err(WorkerError::invalid(format!(
                    "{} statements given, over this worker's limit of {max} per transaction (max_transaction_statements)",
                    req.statements.len()
                )));
            }
            for (i, s) in req.statements.iter().enumerate() {
                if let Err(mut e) = statement::check(&s.sql, &s.params, &limits) {
                    e.0.statement_index = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    e.0.message = format!("statement {}: {}", i + 1, e.0.message);
                    return Err(e);
                }
            }
            transaction::run(target, req, eff).await
        })
        .await
    }

    async fn explain(
        &self,
        req: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let stmt = req.statement.clone().unwrap_or_default();
        let call = self
            .history
            .start(&target.name, "explain", &stmt.sql, stmt.params.len());
        let limits = self.limits.clone();
        let eff = Effective::from_parts(0, 0, req.timeout_ms, &limits, deadline);
        let name = target.name.clone();
        unary(call, &name, async move {
            statement::check(&stmt.sql, &stmt.params, &limits)?;
            explain::run(target, req, eff).await
        })
        .await
    }

    async fn bulk_insert(
        &self,
        req: Request<BulkInsertRequest>,
    ) -> Result<Response<BulkInsertResponse>, Status> {
        let deadline = grpc_timeout(req.metadata());
        let req = req.into_inner();
        let target = self.target(&req.database)?;
        let call = self.history.start(
            &target.name,
            "bulk_insert",
            &format!(
                "COPY {} ({}) FROM STDIN -- {} rows",
                req.table,
                req.columns.join(", "),
                req.rows.len()
            ),
            0,
        );
        let eff = Effective::from_parts(0, 0, req.timeout_ms, &self.limits, deadline);
        let max_rows = self.limits.max_bulk_rows;
        let name = target.name.clone();
        unary(call, &name, bulk_insert::run(target, req, eff, max_rows)).await
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
        let call = self
            .history
            .start(&target.name, "query", &req.sql, req.params.len());
        let (tx, mut rx) = mpsc::channel(4);
        // The task stays in this call's trace (the worker's SERVER span).
        tokio::spawn(query::run(target, req, eff, tx).in_current_span());
        // The response starts with the first message: a result that fits one
        // batch is complete by then, and its headers, messages and trailers
        // leave in one write. Dropping this future (the caller went away)
        // closes the channel, which stops the query.
        let first = rx.recv().await;
        let rest = ReceiverStream::new(rx);
        let stream = history::record_stream(call, futures::stream::iter(first).chain(rest));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The deadline the client sent in `grpc-timeout` (`<digits><unit>`).
pub(crate) fn grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
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

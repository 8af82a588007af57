//! The `pgmcp.v1.Worker` gRPC service.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::Stream;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::worker_server::Worker;
use pgmcp_proto::v1::{
    DatabaseHealthRequest, DatabaseHealthResponse, HistoryRequest, HistoryResponse, InfoRequest,
    InfoResponse, MaintainTableRequest, MaintainTableResponse, MaintenanceOperation, QueryRequest,
    QueryResponse, TopQueriesRequest, TopQueriesResponse, WorkerHealth,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::Limits;
use crate::dba;
use crate::error::WorkerError;
use crate::history::{self, History};
use crate::query::{self, Effective};
use crate::targets::{Target, Targets};

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
}

/// Runs a unary call's work in its own task, so that a caller going away
/// does not cut it off half-way (the statement timeout bounds it), and
/// records it in the history.
async fn unary<T, F>(call: history::Call, database: &str, work: F) -> Result<Response<T>, Status>
where
    T: Send + 'static,
    F: Future<Output = Result<T, WorkerError>> + Send + 'static,
{
    let outcome = match tokio::spawn(work).await {
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
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(query::run(target, req, eff, tx));
        let stream = history::record_stream(call, ReceiverStream::new(rx));
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

//! The `pgmcp.v1.Worker` gRPC service.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use pgmcp_proto::v1::worker_server::Worker;
use pgmcp_proto::v1::{InfoRequest, InfoResponse, QueryRequest, QueryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::config::Limits;
use crate::query::{self, Effective};
use crate::targets::Targets;

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
        // The task stays in this call's trace (the worker's SERVER span).
        tokio::spawn(query::run(target, req, eff, tx).in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
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

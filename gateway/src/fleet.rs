//! The workers a gateway sends calls to, and how a call picks one.
//!
//! Today: a static list of workers, tried in round-robin order; a read that
//! fails because its worker is unreachable, before any row arrived, moves on
//! to the next worker. Every call carries a gRPC deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_proto::v1::{
    Column, InfoRequest, InfoResponse, QueryRequest, Summary, query_response::Part,
};

use crate::errors::GatewayError;
use crate::worker_link::{self, LinkConfig, WorkerChannel};

/// One worker.
#[derive(Clone)]
pub struct WorkerHandle {
    pub url: String,
    client: WorkerClient<WorkerChannel>,
}

/// All workers known to this gateway.
pub struct Fleet {
    workers: Vec<WorkerHandle>,
    next: AtomicUsize,
}

/// A complete query result as received from a worker.
#[derive(Debug, Default)]
pub struct QueryOutcome {
    pub columns: Vec<Column>,
    /// Each row is a JSON array (see `RowBatch` in the proto).
    pub rows: Vec<Vec<u8>>,
    pub summary: Summary,
    /// Which worker answered.
    pub worker: String,
}

impl Fleet {
    /// Builds clients for `urls`; connections open lazily on first use.
    pub fn new(urls: &[String], link: &LinkConfig) -> Result<Self> {
        let workers = urls
            .iter()
            .cloned()
            .zip(worker_link::clients(urls, link)?)
            .map(|(url, client)| WorkerHandle { url, client })
            .collect();
        Ok(Fleet {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// Workers in the order this call should try them.
    fn candidates(&self) -> Vec<&WorkerHandle> {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).map(|i| &self.workers[(start + i) % n]).collect()
    }

    /// True when at least one worker answers `Info` within `within`.
    pub async fn any_ready(&self, within: Duration) -> bool {
        let probes = self.workers.iter().map(|w| {
            let mut client = w.client.clone();
            async move {
                let mut req = tonic::Request::new(InfoRequest {});
                req.set_timeout(within);
                tokio::time::timeout(within, client.info(req))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .any(|ok| ok)
    }

    /// `Info` of every reachable worker.
    pub async fn infos(
        &self,
        within: Duration,
    ) -> Vec<(String, Result<InfoResponse, GatewayError>)> {
        let probes = self.workers.iter().map(|w| {
            let mut client = w.client.clone();
            let url = w.url.clone();
            async move {
                let mut req = tonic::Request::new(InfoRequest {});
                req.set_timeout(within);
                let res = match tokio::time::timeout(within, client.info(req)).await {
                    Ok(Ok(r)) => Ok(r.into_inner()),
                    Ok(Err(s)) => Err(GatewayError::from(s)),
                    Err(_) => Err(GatewayError::new(
                        ErrorKind::Unavailable,
                        "no answer in time",
                    )),
                };
                (url, res)
            }
        });
        futures::future::join_all(probes).await
    }

    /// Runs a read-only query on some worker and collects its result.
    /// `deadline` bounds the whole call, including waiting for a connection.
    pub async fn query(
        &self,
        req: QueryRequest,
        deadline: Duration,
    ) -> Result<QueryOutcome, GatewayError> {
        let started = tokio::time::Instant::now();
        let mut tried = Vec::new();
        let mut last_err = None;
        for worker in self.candidates() {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            match tokio::time::timeout(remaining, query_one(worker, req.clone(), remaining)).await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(Attempt::Retryable(err))) => {
                    tracing::warn!(worker = %worker.url, error = %err, "worker unavailable; trying the next one");
                    tried.push(worker.url.clone());
                    last_err = Some(err);
                }
                Ok(Err(Attempt::Final(err))) => return Err(err),
                Err(_) => {
                    return Err(GatewayError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no complete answer from worker {} within {} ms",
                            worker.url,
                            deadline.as_millis()
                        ),
                    ));
                }
            }
        }
        let mut err = last_err.unwrap_or_else(|| {
            GatewayError::new(
                ErrorKind::Timeout,
                "the deadline passed before any worker could be tried",
            )
        });
        if err.kind() == ErrorKind::Unavailable && !tried.is_empty() {
            err.0.message = format!(
                "no worker could be reached (tried {}): {}",
                tried.join(", "),
                err.0.message
            );
        }
        Err(err)
    }
}

enum Attempt {
    /// Failed before any row arrived because the worker could not be
    /// reached; another worker may serve the read.
    Retryable(GatewayError),
    Final(GatewayError),
}

async fn query_one(
    worker: &WorkerHandle,
    req: QueryRequest,
    deadline: Duration,
) -> Result<QueryOutcome, Attempt> {
    let mut client = worker.client.clone();
    let mut request = tonic::Request::new(req);
    request.set_timeout(deadline);
    let mut stream = match client.query(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            let err = GatewayError::from(status);
            return Err(
                if err.kind() == ErrorKind::Unavailable && err.0.sqlstate.is_empty() {
                    Attempt::Retryable(err)
                } else {
                    Attempt::Final(err)
                },
            );
        }
    };
    let mut out = QueryOutcome {
        worker: worker.url.clone(),
        ..QueryOutcome::default()
    };
    let mut got_summary = false;
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|s| Attempt::Final(GatewayError::from(s)))?;
        match msg.part {
            Some(Part::Columns(c)) => out.columns = c.columns,
            Some(Part::Rows(batch)) => out.rows.extend(batch.rows),
            Some(Part::Summary(s)) => {
                out.summary = s;
                got_summary = true;
            }
            None => {}
        }
    }
    if !got_summary {
        return Err(Attempt::Final(GatewayError::new(
            ErrorKind::Connection,
            format!(
                "worker {} ended the result early; the result is incomplete",
                worker.url
            ),
        )));
    }
    Ok(out)
}

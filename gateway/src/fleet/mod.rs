//! The workers a gateway sends calls to, and how a call picks one.
//!
//! Today: a static list of workers, tried in round-robin order; a read that
//! fails because its worker is unreachable, before any row arrived, moves on
//! to the next worker. Every call carries a gRPC deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_proto::v1::{
    Column, HistoryRequest, HistoryResponse, InfoRequest, InfoResponse, QueryRequest, Summary,
    query_response::Part,
};

use crate::errors::GatewayError;
use crate::telemetry::Metrics;
use crate::worker_link::{self, LinkConfig, WorkerChannel};

/// One worker.
#[derive(Clone)]
pub struct WorkerHandle {
    pub url: String,
    /// Each call gets a CLIENT span and carries the trace context.
    client: WorkerClient<WorkerChannel>,
}

/// All workers known to this gateway.
pub struct Fleet {
    workers: Vec<WorkerHandle>,
    next: AtomicUsize,
    metrics: Arc<Metrics>,
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
    pub fn new(urls: &[String], link: &LinkConfig, metrics: &Arc<Metrics>) -> Result<Self> {
        let workers = urls
            .iter()
            .cloned()
            .zip(worker_link::clients(urls, link, metrics)?)
            .map(|(url, client)| WorkerHandle { url, client })
            .collect();
        Ok(Fleet {
            workers,
            next: AtomicUsize::new(0),
            metrics: metrics.clone(),
        })
    }

    /// Workers in the order this call should try them.
    fn candidates(&self) -> Vec<&WorkerHandle> {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).map(|i| &self.workers[(start + i) % n]).collect()
    }

    /// True when at least one worker answers `Info` within `within`.
    /// Updates each worker's `pgmcp_gateway_worker_up`.
    pub async fn any_ready(&self, within: Duration) -> bool {
        let probes = self.workers.iter().map(|w| {
            let mut client = w.client.clone();
            let metrics = self.metrics.clone();
            async move {
                let mut req = tonic::Request::new(InfoRequest {});
                req.set_timeout(within);
                let up = tokio::time::timeout(within, client.info(req))
                    .await
                    .is_ok_and(|r| r.is_ok());
                metrics.worker_up(&w.url, up);
                up
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

    /// Makes one unary call on some worker. `retry` says whether a call that
    /// failed because its worker was unreachable may go to the next worker
    /// (reads) or not (writes: whether it reached the worker is unknown).
    /// `call` gets a client and the request (its timeout set to the time
    /// left) and sends it.
    pub async fn unary<Req, T, F, Fut>(
        &self,
        retry: Retry,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Result<T, GatewayError>
    where
        Req: Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = tokio::time::Instant::now();
        let mut tried = Vec::new();
        let mut last_err = None;
        for worker in self.candidates() {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(remaining);
            match tokio::time::timeout(remaining, call(worker.client.clone(), request)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => {
                    let err = GatewayError::from(status);
                    if err.kind() == ErrorKind::UnknownDatabase {
                        // This worker does not serve the database and did
                        // nothing; another one may.
                        last_err.get_or_insert(err);
                        continue;
                    }
                    let unreachable =
                        err.kind() == ErrorKind::Unavailable && err.0.sqlstate.is_empty();
                    if !unreachable {
                        return Err(err);
                    }
                    if retry == Retry::Never {
                        let mut err = err;
                        err.0.message = format!(
                            "worker {} could not be reached ({}); the write may or may not have been applied, \
                             so it was not retried — check before sending it again",
                            worker.url, err.0.message
                        );
                        err.0.retry_safe = false;
                        return Err(err);
                    }
                    tracing::warn!(worker = %worker.url, error = %err, "worker unavailable; trying the next one");
                    tried.push(worker.url.clone());
                    if last_err
                        .as_ref()
                        .is_none_or(|e| e.kind() != ErrorKind::UnknownDatabase)
                    {
                        last_err = Some(err);
                    }
                }
                Err(_) => {
                    return Err(GatewayError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no answer from worker {} within {} ms",
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

    /// `History` of every worker (at most `limit` entries each; 0 for all),
    /// by worker URL, in configuration order.
    pub async fn histories(
        &self,
        limit: u32,
        within: Duration,
    ) -> Vec<(String, Result<HistoryResponse, GatewayError>)> {
        let probes = self.workers.iter().map(|w| {
            let mut client = w.client.clone();
            let url = w.url.clone();
            async move {
                let mut req = tonic::Request::new(HistoryRequest { limit });
                req.set_timeout(within);
                let res = match tokio::time::timeout(within, client.history(req)).await {
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

    /// Makes a unary call on a worker serving `database` and returns its
    /// answer with the worker's URL. `call` gets a client, the time left
    /// (to set as the request's timeout) and the database to name. A worker
    /// that cannot be reached, or that does not serve `database`, passes the
    /// call to the next one, so use this only for calls that are safe to
    /// repeat. An empty `database` is resolved first when the fleet has
    /// several workers: it stands for the fleet's only database, and is an
    /// error when the workers serve several.
    pub async fn unary_db<T, F, Fut>(
        &self,
        database: &str,
        deadline: Duration,
        call: F,
    ) -> Result<(T, String), GatewayError>
    where
        F: Fn(WorkerClient<WorkerChannel>, Duration, String) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = tokio::time::Instant::now();
        let database = if database.is_empty() && self.workers.len() > 1 {
            self.only_database(deadline.min(Duration::from_secs(2)))
                .await?
        } else {
            database.to_string()
        };
        let database = database.as_str();
        let mut last_err = None;
        let mut unknown = 0;
        let candidates = self.candidates();
        let n = candidates.len();
        for worker in candidates {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let answer = tokio::time::timeout(
                remaining,
                call(worker.client.clone(), remaining, database.to_string()),
            )
            .await;
            let err = match answer {
                Ok(Ok(resp)) => return Ok((resp.into_inner(), worker.url.clone())),
                Ok(Err(status)) => GatewayError::from(status),
                Err(_) => {
                    return Err(GatewayError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no answer from worker {} within {} ms",
                            worker.url,
                            deadline.as_millis()
                        ),
                    ));
                }
            };
            match err.kind() {
                ErrorKind::Unavailable if err.0.sqlstate.is_empty() => {
                    tracing::warn!(worker = %worker.url, error = %err, "worker unavailable; trying the next one");
                }
                ErrorKind::UnknownDatabase => unknown += 1,
                _ => return Err(err),
            }
            last_err = Some(err);
        }
        if unknown == n && n > 1 && !database.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::UnknownDatabase,
                format!(
                    "no worker serves a database named `{database}`; list_databases shows the databases served"
                ),
            ));
        }
        Err(last_err.unwrap_or_else(|| {
            GatewayError::new(
                ErrorKind::Timeout,
                "the deadline passed before any worker could be tried",
            )
        }))
    }

    /// The one database name the reachable workers serve; an error naming
    /// them when there are several (or none).
    async fn only_database(&self, within: Duration) -> Result<String, GatewayError> {
        let mut names: Vec<String> = Vec::new();
        for (_, info) in self.infos(within).await {
            for t in info.map(|i| i.targets).unwrap_or_default() {
                if !names.contains(&t.name) {
                    names.push(t.name);
                }
            }
        }
        match names.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(GatewayError::new(
                ErrorKind::Unavailable,
                "no worker answered, so no database can be reached",
            )),
            _ => {
                names.sort();
                Err(GatewayError::new(
                    ErrorKind::UnknownDatabase,
                    format!(
                        "several databases are served ({}); name one with `database`",
                        names.join(", ")
                    ),
                ))
            }
        }
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
                Ok(Ok(outcome)) => {
                    self.metrics.worker_up(&worker.url, true);
                    return Ok(outcome);
                }
                Ok(Err(Attempt::Retryable(err))) => {
                    if err.kind() != ErrorKind::UnknownDatabase {
                        self.metrics.worker_up(&worker.url, false);
                    }
                    if err.kind() == ErrorKind::UnknownDatabase {
                        tracing::debug!(worker = %worker.url, error = %err, "worker does not serve the database; trying the next one");
                    } else {
                        tracing::warn!(worker = %worker.url, error = %err, "worker unavailable; trying the next one");
                    }
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
        if err.kind() == ErrorKind::UnknownDatabase && tried.len() > 1 {
            err.0.message = format!(
                "no worker serves a database named `{}`; list_databases shows the databases served",
                req.database
            );
        }
        Err(err)
    }
}

/// Whether a call may be retried on another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: retried on the next worker when one is unreachable.
    OnUnreachable,
    /// Writes: never retried.
    Never,
}

enum Attempt {
    /// Failed before any row arrived because the worker could not be
    /// reached or does not serve the database; another worker may serve
    /// the read.
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
            // Unreachable, or serving other databases: another worker may serve it.
            let elsewhere = (err.kind() == ErrorKind::Unavailable && err.0.sqlstate.is_empty())
                || err.kind() == ErrorKind::UnknownDatabase;
            return Err(if elsewhere {
                Attempt::Retryable(err)
            } else {
                Attempt::Final(err)
            });
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

/// Unary calls (introspection and other request/response RPCs).
impl Fleet {
    /// Sends a unary call to one worker after another, in round-robin order,
    /// until one answers. A worker that cannot be reached, or that does not
    /// serve the requested database, hands the call to the next one; any
    /// other answer, success or error, is final. `deadline` bounds the whole
    /// call.
    pub async fn unary_read<Req, Resp, F, Fut>(
        &self,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Result<Resp, GatewayError>
    where
        Req: Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let started = tokio::time::Instant::now();
        let mut tried = Vec::new();
        let mut unreachable = None;
        let mut not_served = None;
        for worker in self.candidates() {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(remaining);
            match tokio::time::timeout(remaining, call(worker.client.clone(), request)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => {
                    let err = GatewayError::from(status);
                    match err.kind() {
                        ErrorKind::Unavailable if err.0.sqlstate.is_empty() => {
                            tracing::warn!(worker = %worker.url, error = %err, "worker unavailable; trying the next one");
                            tried.push(worker.url.clone());
                            unreachable = Some(err);
                        }
                        ErrorKind::UnknownDatabase => {
                            not_served.get_or_insert(err);
                        }
                        _ => return Err(err),
                    }
                }
                Err(_) => {
                    return Err(GatewayError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no answer from worker {} within {} ms",
                            worker.url,
                            deadline.as_millis()
                        ),
                    ));
                }
            }
        }
        if let Some(err) = not_served {
            return Err(err);
        }
        let mut err = unreachable.unwrap_or_else(|| {
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

    /// Sends a unary call to every worker at once; each worker's answer, by
    /// worker URL, in configuration order.
    pub async fn broadcast<Req, Resp, F, Fut>(
        &self,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Vec<(String, Result<Resp, GatewayError>)>
    where
        Req: Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let calls = self.workers.iter().map(|w| {
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(deadline);
            let answer = call(w.client.clone(), request);
            async move {
                let res = match tokio::time::timeout(deadline, answer).await {
                    Ok(Ok(r)) => Ok(r.into_inner()),
                    Ok(Err(s)) => Err(GatewayError::from(s)),
                    Err(_) => Err(GatewayError::new(
                        ErrorKind::Unavailable,
                        format!("no answer within {} ms", deadline.as_millis()),
                    )),
                };
                (w.url.clone(), res)
            }
        });
        futures::future::join_all(calls).await
    }

    /// The names of the databases the reachable workers serve, sorted.
    pub async fn database_names(&self, within: Duration) -> Vec<String> {
        let mut names: Vec<String> = self
            .infos(within)
            .await
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .flat_map(|info| info.targets.into_iter().map(|t| t.name))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl Fleet {
    /// Drops the schema cache of `database` (empty: of every database) on
    /// every worker, each worker's answer by URL. Call it after DDL that
    /// went through one worker, so the others do not serve a stale catalog
    /// until their TTL runs out.
    pub async fn invalidate_schema_cache(
        &self,
        database: &str,
        deadline: Duration,
    ) -> Vec<(
        String,
        Result<pgmcp_proto::v1::InvalidateSchemaCacheResponse, GatewayError>,
    )> {
        let req = pgmcp_proto::v1::InvalidateSchemaCacheRequest {
            database: database.to_string(),
        };
        self.broadcast(req, deadline, |mut c, r| async move {
            c.invalidate_schema_cache(r).await
        })
        .await
    }
}

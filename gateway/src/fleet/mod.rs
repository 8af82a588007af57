//! The workers a gateway sends calls to, and how a call picks one.
//!
//! Membership ([`discovery`]): static worker URLs, `dns://name:port` entries
//! resolved again every few seconds, and an optional workers file read
//! again as often. Health ([`health`]): every worker's grpc.health.v1
//! status is watched; only workers that serve are in the rotation, and
//! `Info` tells which databases each one serves. Routing ([`members`]): a
//! call goes to a healthy worker serving its database, the less busy of two
//! drawn at random (by calls outstanding from this gateway). Failover: a
//! read whose worker cannot be reached, or is overloaded, before any result
//! came back is retried once on another worker, within a retry budget;
//! writes are retried only when the worker provably did nothing
//! (overloaded, or not serving the database). Every call carries a gRPC
//! deadline.

pub mod discovery;
mod health;
pub mod members;
mod routed;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_proto::v1::{
    Column, HistoryRequest, HistoryResponse, InfoRequest, InfoResponse, QueryRequest, Summary,
    query_response::Part,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::retry::budget::{Budget, TpsBudget};

use crate::errors::GatewayError;
use crate::telemetry::Metrics;
use crate::worker_link::{Link, LinkConfig, WorkerChannel};
use discovery::Sources;
use members::Member;
pub use routed::Routed;

/// How long a call with no healthy worker in sight waits for one (at
/// start-up, or while a worker restarts), within its deadline.
const WAIT_FOR_WORKER: Duration = Duration::from_secs(2);

/// All workers known to this gateway.
pub struct Fleet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    members: RwLock<Arc<Vec<Arc<Member>>>>,
    /// Bumped whenever membership or health changes.
    changed: watch::Sender<u64>,
    link: Link,
    metrics: Arc<Metrics>,
    retries: TpsBudget,
    stop: CancellationToken,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
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

/// Whether a call may be retried on another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: retried once on another worker when theirs is unreachable.
    OnUnreachable,
    /// Writes: retried only when the worker provably did nothing.
    Never,
}

/// How one attempt on a worker failed.
pub enum Failure {
    /// The call's status: the routing loop decides whether another worker
    /// may take the call (see [`Fleet::route`]).
    Status(GatewayError),
    /// The call never left the gateway (see [`crate::errors::never_sent`]):
    /// typically the worker closed an aged connection. It may be sent again,
    /// to the same worker too, without counting as a retry.
    NotSent(GatewayError),
    /// Final whatever its kind (e.g. a result that ended without its
    /// summary).
    Final(GatewayError),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        if crate::errors::never_sent(&s) {
            Failure::NotSent(GatewayError::from(s))
        } else {
            Failure::Status(GatewayError::from(s))
        }
    }
}

/// How often one call is sent again after it could not be sent at all.
const MAX_RESENDS: u32 = 2;

/// Makes a call to one worker with `send`, and makes it again, at most
/// [`MAX_RESENDS`] times, while the worker never processed it (see
/// [`crate::errors::never_sent`]). For calls that stay with their worker;
/// [`Fleet::route`] picks a worker again instead.
pub(crate) async fn resending<T, F, Fut>(mut send: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut resent = 0;
    loop {
        match send().await {
            Err(s) if resent < MAX_RESENDS && crate::errors::never_sent(&s) => resent += 1,
            answer => return answer,
        }
    }
}

/// True for an error raised by the transport rather than by PostgreSQL: the
/// worker could not be reached, or went away.
fn unreachable(err: &GatewayError) -> bool {
    err.kind() == ErrorKind::Unavailable && err.0.sqlstate.is_empty()
}

impl Fleet {
    /// A fleet of the workers `sources` name. Static URLs join at once;
    /// names and files are resolved in the background, and again every
    /// `sources.interval`. Must run inside a Tokio runtime.
    pub fn new(sources: Sources, link: &LinkConfig, metrics: &Arc<Metrics>) -> Result<Self> {
        let link = Link::new(link, metrics)?;
        let (changed, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            members: RwLock::new(Arc::new(Vec::new())),
            changed,
            link,
            metrics: metrics.clone(),
            retries: TpsBudget::new(Duration::from_secs(10), 10, 0.2),
            stop: CancellationToken::new(),
        });
        let mut statics = discovery::Wanted::default();
        for e in &sources.entries {
            if let discovery::Entry::Url(url) = e {
                // Checked now, so a typo fails at start-up.
                inner.link.channel(url, None)?;
                statics.insert(url.clone(), None);
            }
        }
        inner.reconcile(&statics);
        if sources.dynamic() {
            tokio::spawn(discover(inner.clone(), sources));
        }
        Ok(Fleet { inner })
    }

    fn members(&self) -> Arc<Vec<Arc<Member>>> {
        self.inner.members()
    }

    /// True when at least one worker serves, waiting up to `within` for one.
    pub async fn any_ready(&self, within: Duration) -> bool {
        let mut changes = self.inner.changed.subscribe();
        let until = tokio::time::Instant::now() + within;
        loop {
            if self.members().iter().any(|m| m.is_healthy()) {
                return true;
            }
            if tokio::time::timeout_at(until, changes.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// `Info` of every known worker, in the order they joined.
    pub async fn infos(
        &self,
        within: Duration,
    ) -> Vec<(String, Result<InfoResponse, GatewayError>)> {
        self.broadcast(
            InfoRequest {},
            within,
            |mut c, r| async move { c.info(r).await },
        )
        .await
    }

    /// `History` of every worker (at most `limit` entries each; 0 for all),
    /// by worker URL.
    pub async fn histories(
        &self,
        limit: u32,
        within: Duration,
    ) -> Vec<(String, Result<HistoryResponse, GatewayError>)> {
        self.broadcast(HistoryRequest { limit }, within, |mut c, r| async move {
            c.history(r).await
        })
        .await
    }

    /// Sends a unary call to every known worker at once; each worker's
    /// answer, by worker URL. A call a worker never processed (its
    /// connection closed under it) is sent to it again, as routed calls are.
    pub async fn broadcast<Req, Resp, F, Fut>(
        &self,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Vec<(String, Result<Resp, GatewayError>)>
    where
        Req: Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let members = self.members();
        let until = tokio::time::Instant::now() + deadline;
        let (req, call) = (&req, &call);
        let calls = members.iter().map(|w| async move {
            let answer = resending(|| {
                let mut request = tonic::Request::new(req.clone());
                request.set_timeout(until.saturating_duration_since(tokio::time::Instant::now()));
                call(w.client.clone(), request)
            });
            let res = match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(r)) => Ok(r.into_inner()),
                Ok(Err(s)) => Err(GatewayError::from(s)),
                Err(_) => Err(GatewayError::new(
                    ErrorKind::Unavailable,
                    format!("no answer within {} ms", deadline.as_millis()),
                )),
            };
            (w.url.clone(), res)
        });
        futures::future::join_all(calls).await
    }

    /// The names of the databases the serving workers announced, sorted.
    pub async fn database_names(&self, within: Duration) -> Vec<String> {
        self.any_ready(within).await;
        let mut names: Vec<String> = self
            .members()
            .iter()
            .filter(|m| m.is_healthy())
            .flat_map(|m| m.targets().unwrap_or_default())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Makes one unary call for the request's database. `retry` says what
    /// may be retried on another worker (see [`Retry`]); `call` gets a
    /// client and the request (database resolved, timeout set to the time
    /// left) and sends it.
    pub async fn unary<Req, T, F, Fut>(
        &self,
        retry: Retry,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Result<T, GatewayError>
    where
        Req: Routed + Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let database = req.database().to_string();
        let (answer, _) = self
            .route(&database, retry, deadline, |client, left, database| {
                let mut req = req.clone();
                req.set_database(database);
                let mut request = tonic::Request::new(req);
                request.set_timeout(left);
                let answer = call(client, request);
                async move {
                    answer
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(Failure::from)
                }
            })
            .await?;
        Ok(answer)
    }

    /// A read-only unary call: [`Fleet::unary`] with [`Retry::OnUnreachable`].
    pub async fn unary_read<Req, T, F, Fut>(
        &self,
        req: Req,
        deadline: Duration,
        call: F,
    ) -> Result<T, GatewayError>
    where
        Req: Routed + Clone,
        F: Fn(WorkerClient<WorkerChannel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.unary(Retry::OnUnreachable, req, deadline, call).await
    }

    /// Runs a read-only query on a worker serving its database and collects
    /// the result. `deadline` bounds the whole call.
    pub async fn query(
        &self,
        req: QueryRequest,
        deadline: Duration,
    ) -> Result<QueryOutcome, GatewayError> {
        let database = req.database.clone();
        let (mut outcome, url) = self
            .route(
                &database,
                Retry::OnUnreachable,
                deadline,
                |client, left, database| {
                    let mut req = req.clone();
                    req.database = database;
                    query_one(client, req, left)
                },
            )
            .await?;
        outcome.worker = url;
        Ok(outcome)
    }

    /// The one routing loop: resolves the database, picks a worker, makes
    /// the attempt, and decides what a failure means. Returns the answer
    /// and the URL of the worker that gave it.
    async fn route<T, F, Fut>(
        &self,
        database: &str,
        retry: Retry,
        deadline: Duration,
        mut attempt: F,
    ) -> Result<(T, String), GatewayError>
    where
        F: FnMut(WorkerClient<WorkerChannel>, Duration, String) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = tokio::time::Instant::now();
        let until = started + deadline;
        let database = self.inner.resolve_database(database, until).await?;
        self.inner.retries.deposit();
        let mut tried: Vec<String> = Vec::new();
        let mut retried = false;
        let mut resent = 0;
        let mut last: Option<GatewayError> = None;
        loop {
            let member = match &last {
                None => self.inner.pick(&database, until).await?,
                // A retry goes to another worker serving now, or not at all.
                Some(err) => match members::pick_p2c(&self.inner.eligible(&database, &tried)) {
                    Some(m) => m,
                    // Every worker that claimed the database denied it
                    // (their Info was stale): list what the fleet serves,
                    // not what the last of them does.
                    None if err.kind() == ErrorKind::UnknownDatabase => {
                        return Err(self.inner.unknown_database(&database, true));
                    }
                    None => return Err(exhausted(last, &tried)),
                },
            };
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(deadline_passed(deadline, &tried));
            }
            let guard = member.begin();
            let answer =
                tokio::time::timeout(left, attempt(member.client.clone(), left, database.clone()))
                    .await;
            drop(guard);
            let err = match answer {
                Ok(Ok(value)) => {
                    self.inner.metrics.worker_up(&member.url, true);
                    return Ok((value, member.url.clone()));
                }
                Ok(Err(Failure::Final(err))) => return Err(err),
                Ok(Err(Failure::Status(err))) => err,
                // Nothing reached the worker: pick again (the same worker
                // reconnects), without marking it down or using the retry.
                Ok(Err(Failure::NotSent(err))) if resent < MAX_RESENDS => {
                    resent += 1;
                    tracing::debug!(worker = %member.url, error = %err, "call not sent (connection closed); sending again");
                    continue;
                }
                Ok(Err(Failure::NotSent(err))) => err,
                Err(_) => {
                    return Err(GatewayError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no complete answer from worker {} within {} ms",
                            member.url,
                            deadline.as_millis()
                        ),
                    ));
                }
            };
            tried.push(member.url.clone());
            let kind = err.kind();
            let gone = unreachable(&err);
            match kind {
                // The worker did nothing: it does not serve the database
                // (its Info is stale) — look again and try another.
                ErrorKind::UnknownDatabase => {
                    member.recheck.notify_one();
                    tracing::debug!(worker = %member.url, "worker does not serve the database; trying another");
                }
                ErrorKind::Overloaded => {
                    if retried || !self.inner.retries.withdraw() {
                        return Err(err);
                    }
                    retried = true;
                    tracing::info!(worker = %member.url, "worker overloaded; trying another");
                }
                _ if gone => {
                    self.inner.set_health(&member, false, &err.0.message);
                    member.recheck.notify_one();
                    if retry == Retry::Never {
                        let mut err = err;
                        err.0.message = format!(
                            "worker {} could not be reached ({}); the write may or may not have been applied, \
                             so it was not retried — check before sending it again",
                            member.url, err.0.message
                        );
                        err.0.retry_safe = false;
                        return Err(err);
                    }
                    if retried || !self.inner.retries.withdraw() {
                        return Err(exhausted(Some(err), &tried));
                    }
                    retried = true;
                    tracing::warn!(worker = %member.url, error = %err, "worker unavailable; retrying on another");
                }
                _ => return Err(err),
            }
            last = Some(err);
        }
    }
}

/// The error of a call no worker could take: the last worker's, saying
/// which were tried when they could not be reached.
fn exhausted(last: Option<GatewayError>, tried: &[String]) -> GatewayError {
    let Some(mut err) = last else {
        return GatewayError::new(ErrorKind::Unavailable, "no worker could take the call");
    };
    if unreachable(&err) {
        err.0.message = format!(
            "no worker could be reached (tried {}): {}",
            tried.join(", "),
            err.0.message
        );
        err.0.retry_safe = true;
    }
    err
}

fn deadline_passed(deadline: Duration, tried: &[String]) -> GatewayError {
    let mut msg = format!("the deadline of {} ms passed", deadline.as_millis());
    if !tried.is_empty() {
        msg.push_str(&format!(" after trying {}", tried.join(", ")));
    }
    GatewayError::new(ErrorKind::Timeout, msg)
}

impl Inner {
    fn members(&self) -> Arc<Vec<Arc<Member>>> {
        match self.members.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records a worker's health, logs and counts changes.
    pub(crate) fn set_health(&self, member: &Member, up: bool, why: &str) {
        self.metrics.worker_up(&member.url, up);
        if member.set_healthy(up) {
            if up {
                tracing::info!(worker = %member.url, databases = ?member.targets().unwrap_or_default(), "worker joins the rotation");
            } else {
                tracing::warn!(worker = %member.url, reason = %why, "worker leaves the rotation");
            }
            self.bump();
        }
    }

    /// Makes the members exactly `wanted`: new URLs join (health unknown
    /// until their watch reports), missing ones leave (calls in flight on
    /// them finish).
    fn reconcile(self: &Arc<Self>, wanted: &discovery::Wanted) {
        let current = self.members();
        let mut next: Vec<Arc<Member>> = Vec::with_capacity(wanted.0.len());
        let mut changed = false;
        for m in current.iter() {
            if wanted.contains(&m.url) {
                next.push(m.clone());
            } else {
                tracing::info!(worker = %m.url, "worker removed from the fleet");
                m.stop.cancel();
                changed = true;
            }
        }
        for (url, domain) in &wanted.0 {
            if current.iter().any(|m| &m.url == url) {
                continue;
            }
            let channel = match self.link.channel(url, domain.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(worker = %url, error = %format!("{e:#}"), "cannot use worker address");
                    continue;
                }
            };
            let member = Arc::new(Member::new(
                url.clone(),
                channel.clone(),
                self.link.client(channel),
            ));
            tracing::info!(worker = %url, "worker added to the fleet");
            tokio::spawn(health::watch(member.clone(), self.clone()));
            next.push(member);
            changed = true;
        }
        if changed {
            match self.members.write() {
                Ok(mut m) => *m = Arc::new(next),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
            }
            self.bump();
        }
    }

    /// The database a call names: as given, or — when it names none — the
    /// one database the fleet serves (an error listing them when several).
    async fn resolve_database(
        &self,
        database: &str,
        until: tokio::time::Instant,
    ) -> Result<String, GatewayError> {
        if !database.is_empty() {
            return Ok(database.to_string());
        }
        let names = self.known_databases(until).await;
        match names.as_slice() {
            [only] => Ok(only.clone()),
            // Nothing known yet: let the worker pick its default.
            [] => Ok(String::new()),
            _ => Err(GatewayError::new(
                ErrorKind::UnknownDatabase,
                format!(
                    "several databases are served ({}); name one with `database`",
                    names.join(", ")
                ),
            )),
        }
    }

    /// The databases serving workers announced, waiting briefly (within
    /// `until`) for a first worker to report.
    async fn known_databases(&self, until: tokio::time::Instant) -> Vec<String> {
        let wait_until = until.min(tokio::time::Instant::now() + WAIT_FOR_WORKER);
        let mut changes = self.changed.subscribe();
        loop {
            let members = self.members();
            let mut names: Vec<String> = members
                .iter()
                .filter(|m| m.is_healthy())
                .flat_map(|m| m.targets().unwrap_or_default())
                .collect();
            if !names.is_empty() {
                names.sort();
                names.dedup();
                return names;
            }
            if tokio::time::timeout_at(wait_until, changes.changed())
                .await
                .is_err()
            {
                return Vec::new();
            }
        }
    }

    /// Healthy workers serving `database` (any, when empty), not in `tried`.
    fn eligible(&self, database: &str, tried: &[String]) -> Vec<Arc<Member>> {
        self.members()
            .iter()
            .filter(|m| m.is_healthy() && !tried.contains(&m.url))
            .filter(|m| database.is_empty() || m.serves(database))
            .cloned()
            .collect()
    }

    /// The error for a call whose `database` no serving worker has: the
    /// databases the whole fleet announced. `denied`: the workers that
    /// announced `database` said they do not serve it, so it is not listed.
    fn unknown_database(&self, database: &str, denied: bool) -> GatewayError {
        let members = self.members();
        let mut names: Vec<String> = members
            .iter()
            .flat_map(|m| m.targets().unwrap_or_default())
            .filter(|n| !denied || n != database)
            .collect();
        names.sort();
        names.dedup();
        let down = members.iter().filter(|m| !m.is_healthy()).count();
        let mut msg = format!(
            "no database named `{database}` is served by any worker; available: {}",
            names.join(", ")
        );
        if down > 0 {
            msg.push_str(&format!(
                " ({down} worker(s) not serving right now may have it)"
            ));
        }
        GatewayError::new(ErrorKind::UnknownDatabase, msg)
    }

    /// A healthy worker serving `database`, chosen by two random choices
    /// over calls outstanding. When no worker serves at all (start-up, a
    /// restart), waits briefly, within `until`, for one; then explains what
    /// is missing.
    async fn pick(
        &self,
        database: &str,
        until: tokio::time::Instant,
    ) -> Result<Arc<Member>, GatewayError> {
        let wait_until = until.min(tokio::time::Instant::now() + WAIT_FOR_WORKER);
        let mut changes = self.changed.subscribe();
        loop {
            if let Some(m) = members::pick_p2c(&self.eligible(database, &[])) {
                return Ok(m);
            }
            let members = self.members();
            let any_healthy = members.iter().any(|m| m.is_healthy());
            // Serving workers, and none of them has the database: say which
            // databases exist (a worker that is down may have it).
            if any_healthy && !database.is_empty() {
                return Err(self.unknown_database(database, false));
            }
            if tokio::time::timeout_at(wait_until, changes.changed())
                .await
                .is_err()
            {
                // Workers that answer but refuse this gateway: say so.
                if let Some(refusal) = members.iter().find_map(|m| m.refusal()) {
                    return Err(refusal);
                }
                let mut err = GatewayError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "no worker could be reached: none of the {} known workers is serving ({}); retry shortly",
                        members.len(),
                        members
                            .iter()
                            .map(|m| m.url.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                err.0.retry_safe = true;
                return Err(err);
            }
        }
    }
}

/// Resolves the sources now and then, until the fleet is dropped.
async fn discover(inner: Arc<Inner>, sources: Sources) {
    let scheme = if inner.link.tls() { "https" } else { "http" };
    let mut previous = BTreeMap::new();
    let mut file_entries = Vec::new();
    loop {
        let wanted = discovery::resolve(&sources, scheme, &mut previous, &mut file_entries).await;
        if wanted.is_empty() {
            tracing::warn!("worker discovery found no workers");
        }
        inner.reconcile(&wanted);
        tokio::select! {
            _ = inner.stop.cancelled() => break,
            _ = tokio::time::sleep(sources.interval) => {}
        }
    }
    for m in inner.members().iter() {
        m.stop.cancel();
    }
}

async fn query_one(
    mut client: WorkerClient<WorkerChannel>,
    req: QueryRequest,
    deadline: Duration,
) -> Result<QueryOutcome, Failure> {
    let mut request = tonic::Request::new(req);
    request.set_timeout(deadline);
    let mut stream = client.query(request).await?.into_inner();
    let mut out = QueryOutcome::default();
    let mut got_summary = false;
    while let Some(msg) = stream.next().await {
        // The result is collected here before anything goes to the client,
        // and a read runs in a rolled-back transaction: whatever arrived,
        // a worker lost mid-stream may hand the read to another.
        let msg = msg?;
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
        return Err(Failure::Final(GatewayError::new(
            ErrorKind::Connection,
            "the worker ended the result early; the result is incomplete",
        )));
    }
    Ok(out)
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

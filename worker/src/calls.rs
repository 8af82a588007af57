//! Admission and accounting of calls: a tower layer over the gRPC server.
//!
//! At most `--max-concurrent-calls` calls of `pgmcp.v1.Worker` (other than
//! the cheap `Info`) run at once — by default the total pool size, so a call
//! that is admitted finds a connection. Excess calls are refused at once with
//! RESOURCE_EXHAUSTED (kind `OVERLOADED`, naming the limit): the gateway can
//! retry elsewhere instead of queueing here. A call holds its slot until its
//! response stream ends or the caller goes away, not merely until the
//! handler returns the stream.
//!
//! Every call ends with one log line: RPC, principal, request id, gRPC status
//! and duration.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use pgmcp_proto::error::{Error, ErrorKind};
use pgmcp_telemetry::CALLS;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;
use tower::{Layer, Service};

use crate::auth::Caller;

/// Limits and logs calls.
#[derive(Clone)]
pub struct CallsLayer {
    slots: Arc<Semaphore>,
    max: usize,
}

impl CallsLayer {
    /// Admits `max` calls at once (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        CallsLayer {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Calls admitted and not yet ended (their responses still streaming).
    pub fn in_flight(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

impl<S> Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls {
            inner,
            slots: self.slots.clone(),
            max: self.max,
        }
    }
}

/// The service [`CallsLayer`] makes.
#[derive(Clone)]
pub struct Calls<S> {
    inner: S,
    slots: Arc<Semaphore>,
    max: usize,
}

impl<S, B> Service<http::Request<B>> for Calls<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = req.uri().path().to_string();
        if rpc.starts_with("/grpc.health.v1.Health/") {
            return Box::pin(self.inner.call(req));
        }
        let caller = req
            .extensions()
            .get::<Arc<Caller>>()
            .cloned()
            .unwrap_or_default();
        // Info and History touch no database: they are never refused.
        let counted = rpc.starts_with("/pgmcp.v1.Worker/")
            && rpc != "/pgmcp.v1.Worker/Info"
            && rpc != "/pgmcp.v1.Worker/History";
        let permit = if counted {
            match self.slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let mut err = Error::new(
                        ErrorKind::Overloaded,
                        format!(
                            "this worker is at its limit of {} concurrent calls (max_concurrent_calls); \
                             retry shortly or on another worker",
                            self.max
                        ),
                    );
                    err.retry_safe = true;
                    tracing::warn!(
                        rpc = %rpc,
                        principal = caller.principal_or_dash(),
                        request_id = caller.request_id_or_dash(),
                        limit = self.max,
                        "call refused: overloaded"
                    );
                    let resp = err.into_status().into_http();
                    return Box::pin(async move { Ok(resp) });
                }
            }
        } else {
            None
        };
        let log = CallLog {
            rpc,
            caller: caller.clone(),
            started: Instant::now(),
            counted,
        };
        let fut = crate::auth::serve_as(caller, self.inner.call(req));
        Box::pin(async move {
            let resp = fut.await?;
            let (parts, body) = resp.into_parts();
            // A trailers-only response (an immediate error) has its status
            // in the headers and no body to wait for.
            if let Some(code) = parts.headers.get("grpc-status") {
                log.finish(code.to_str().ok().and_then(|c| c.parse().ok()));
                return Ok(http::Response::from_parts(parts, body));
            }
            let body = Tracked {
                inner: body,
                _permit: permit,
                log: Some(log),
            };
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(body),
            ))
        })
    }
}

/// One call's log line, written when the call ends.
struct CallLog {
    rpc: String,
    caller: Arc<Caller>,
    started: Instant,
    counted: bool,
}

impl CallLog {
    /// `code` is the gRPC status; `None` when the caller went away first.
    fn finish(self, code: Option<i32>) {
        let alarming = matches!(
            code.map(Code::from_i32),
            Some(Code::Internal | Code::Unknown)
        );
        if !alarming && !tracing::enabled!(target: CALLS, tracing::Level::DEBUG) {
            return;
        }
        let ms = self.started.elapsed().as_millis() as u64;
        let status = match code {
            Some(c) => format!("{:?}", Code::from_i32(c)),
            None => "caller gone".to_string(),
        };
        let principal = self.caller.principal_or_dash();
        let request_id = self.caller.request_id_or_dash();
        if alarming {
            tracing::warn!(rpc = %self.rpc, principal, request_id, status = %status, ms, "call");
        } else if self.counted {
            tracing::info!(target: CALLS, rpc = %self.rpc, principal, request_id, status = %status, ms, "call");
        } else {
            tracing::debug!(target: CALLS, rpc = %self.rpc, principal, request_id, status = %status, ms, "call");
        }
    }
}

/// A response body that keeps the call's slot until the stream ends, and
/// logs the call's outcome from its trailers.
struct Tracked {
    inner: tonic::body::Body,
    _permit: Option<OwnedSemaphorePermit>,
    log: Option<CallLog>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(log) = self.log.take()
                {
                    log.finish(
                        trailers
                            .get("grpc-status")
                            .and_then(|c| c.to_str().ok())
                            .and_then(|c| c.parse().ok()),
                    );
                }
            }
            Poll::Ready(None) => {
                if let Some(log) = self.log.take() {
                    log.finish(Some(0));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(None);
        }
    }
}

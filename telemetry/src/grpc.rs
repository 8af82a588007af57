//! Tower layers that give each gRPC call a span and a duration measurement.
//!
//! [`ClientLayer`] wraps a gateway's channel to a worker: a CLIENT span
//! named after the method (`pgmcp.v1.Worker/Query`), child of the current
//! span, whose context is injected into the request metadata
//! ([`crate::propagation`]). [`ServerLayer`] wraps the worker's server: a
//! SERVER span whose parent is the context found in the metadata.
//!
//! A call lasts until its response body ends: for a streaming response that
//! is when the trailers (`grpc-status`) arrive, so the span and the duration
//! cover the whole stream, and `rpc.status_code` is the call's real outcome.
//! A body dropped before its end counts as `CANCELLED`.
//!
//! Attributes follow the OpenTelemetry RPC conventions: `rpc.system.name =
//! "grpc"`, `rpc.method` fully qualified (`pgmcp.v1.Worker/Query`),
//! `rpc.status_code` as a name (`OK`, `INVALID_ARGUMENT`, …), and for clients
//! `server.address` / `server.port`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::Status;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

/// Receives the outcome of every call, e.g. to feed a duration histogram.
pub trait Observer: Send + Sync + 'static {
    /// `method` is fully qualified (`pgmcp.v1.Worker/Query`), `code` a gRPC
    /// status name (`OK`, `CANCELLED`, …).
    fn observe(&self, method: &str, code: &'static str, elapsed: Duration);
}

/// Whether a server call gets a span, given its method and whether the
/// caller sent a trace context.
pub type TracePolicy = fn(method: &str, has_parent: bool) -> bool;

/// CLIENT spans and context injection for calls to one server.
#[derive(Clone)]
pub struct ClientLayer {
    observer: Arc<dyn Observer>,
    server: Arc<Server>,
}

struct Server {
    address: String,
    port: Option<u16>,
}

impl ClientLayer {
    /// For calls to the server at `url` (`http://host:port`).
    pub fn new(observer: Arc<dyn Observer>, url: &str) -> Self {
        let uri: Option<http::Uri> = url.parse().ok();
        let address = uri
            .as_ref()
            .and_then(|u| u.host())
            .unwrap_or(url)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.as_ref().and_then(|u| {
            u.port_u16().or(match u.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
        });
        ClientLayer {
            observer,
            server: Arc::new(Server { address, port }),
        }
    }
}

impl<S> tower::Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Client {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ClientLayer`].
#[derive(Clone)]
pub struct Client<S> {
    inner: S,
    layer: ClientLayer,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Client<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let method = method_of(req.uri());
        // Only calls made on behalf of a traced request get a span; probes
        // (readiness, metrics) stay out of the traces.
        let span = if Span::current().is_none() {
            Span::none()
        } else {
            let server = &self.layer.server;
            let span = tracing::info_span!(
                "grpc.client",
                otel.name = %method,
                otel.kind = "client",
                rpc.system.name = "grpc",
                rpc.method = %method,
                server.address = %server.address,
                server.port = server.port,
                rpc.status_code = tracing::field::Empty,
            );
            propagation::inject(&span.context(), req.headers_mut());
            span
        };
        let inner = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner,
            call: Some(Call::new(
                span,
                method,
                self.layer.observer.clone(),
                Side::Client,
            )),
        }
    }
}

/// SERVER spans (parent from the request metadata) for every call.
#[derive(Clone)]
pub struct ServerLayer {
    observer: Arc<dyn Observer>,
    policy: TracePolicy,
}

impl ServerLayer {
    /// `policy` decides which calls are traced; all are observed.
    pub fn new(observer: Arc<dyn Observer>, policy: TracePolicy) -> Self {
        ServerLayer { observer, policy }
    }
}

impl<S> tower::Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ServerLayer`].
#[derive(Clone)]
pub struct ServerService<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for ServerService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = method_of(req.uri());
        let parent = propagation::extract(req.headers());
        let span = if (self.layer.policy)(&method, propagation::is_valid(&parent)) {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %method,
                otel.kind = "server",
                rpc.system.name = "grpc",
                rpc.method = %method,
                rpc.status_code = tracing::field::Empty,
                // The caller's principal, when the service layers learn it.
                enduser.id = tracing::field::Empty,
            );
            if propagation::is_valid(&parent) {
                let _ = span.set_parent(parent);
            }
            span
        } else {
            Span::none()
        };
        // The handler runs inside the span, so whatever it spawns with
        // `in_current_span()` stays in the trace.
        let inner = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner,
            call: Some(Call::new(
                span,
                method,
                self.layer.observer.clone(),
                Side::Server,
            )),
        }
    }
}

/// `pgmcp.v1.Worker/Query` from `/pgmcp.v1.Worker/Query`.
fn method_of(uri: &http::Uri) -> String {
    uri.path().trim_start_matches('/').to_string()
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

/// One call in flight: ends its span and reports its outcome exactly once.
struct Call {
    span: Span,
    method: String,
    start: Instant,
    observer: Arc<dyn Observer>,
    side: Side,
    done: bool,
}

impl Call {
    fn new(span: Span, method: String, observer: Arc<dyn Observer>, side: Side) -> Self {
        Call {
            span,
            method,
            start: Instant::now(),
            observer,
            side,
            done: false,
        }
    }

    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        let name = code_name(code);
        self.observer
            .observe(&self.method, name, self.start.elapsed());
        self.span.record("rpc.status_code", name);
        if is_error(self.side, code) {
            self.span.set_status(Status::error(name));
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Never completed: the caller gave up or the stream was reset.
        self.finish(CANCELLED);
    }
}

const OK: i32 = 0;
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const UNAVAILABLE: i32 = 14;

/// Span status per the RPC conventions: any failure for a client; for a
/// server only codes that mean the server itself failed.
fn is_error(side: Side, code: i32) -> bool {
    match side {
        Side::Client => code != OK,
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

pin_project_lite::pin_project! {
    /// The response future of [`Client`] and [`ServerService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ObservedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.call.as_ref() {
            Some(call) => {
                let _entered = call.span.enter();
                ready!(this.inner.poll(cx))
            }
            None => ready!(this.inner.poll(cx)),
        };
        let mut call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A call that fails at once carries its status in the headers
                // ("trailers-only"); otherwise it comes with the trailers.
                if let (Some(code), Some(c)) = (grpc_status(response.headers()), call.as_mut()) {
                    c.finish(code);
                    call = None;
                }
                Ok(response.map(|inner| ObservedBody { inner, call }))
            }
            Err(e) => {
                if let Some(c) = call.as_mut() {
                    c.finish(UNAVAILABLE);
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its call when the trailers arrive.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(code) = f.trailers_ref().and_then(grpc_status) {
                        call.finish(code);
                    }
                }
                Some(Err(_)) => call.finish(UNKNOWN),
                None => call.finish(UNKNOWN),
            }
            if call.done {
                *this.call = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_server_faults_only() {
        assert!(!is_error(Side::Server, 3));
        assert!(is_error(Side::Server, 13));
        assert!(is_error(Side::Client, 3));
        assert!(!is_error(Side::Client, OK));
        assert_eq!(code_name(8), "RESOURCE_EXHAUSTED");
    }
}

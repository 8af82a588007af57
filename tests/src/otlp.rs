//! An in-process OTLP receiver: a real OTLP/gRPC `TraceService` server (from
//! opentelemetry-proto's service definitions) and an OTLP/HTTP endpoint
//! (`POST /v1/traces`, protobuf), both storing every span they receive.
//!
//! ```ignore
//! let otlp = Collector::start().await?;
//! // point a process at otlp.grpc_endpoint() with OTEL_EXPORTER_OTLP_ENDPOINT …
//! let spans = otlp.wait_for("the DB span", Duration::from_secs(30), |s| s.iter().any(|s| s.name == "SELECT")).await?;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// One received span, flattened with its resource.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// `service.name` of the resource that sent it.
    pub service: String,
    pub resource: BTreeMap<String, String>,
    pub name: String,
    /// Lowercase hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub kind: SpanKind,
    /// Attribute values rendered as text (numbers in decimal).
    pub attributes: BTreeMap<String, String>,
    pub status: StatusCode,
    /// The status's description (set with an error status).
    pub status_message: String,
    /// (name, attributes) of each event, in order.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
}

impl SpanRecord {
    /// An attribute's value as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

type Store = Arc<Mutex<Vec<SpanRecord>>>;

/// The receiver; stops when dropped.
pub struct Collector {
    grpc: SocketAddr,
    http: SocketAddr,
    store: Store,
    stop: CancellationToken,
}

impl Collector {
    /// Starts both endpoints on loopback ports.
    pub async fn start() -> Result<Self> {
        let store: Store = Arc::default();
        let stop = CancellationToken::new();

        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let grpc = grpc_listener.local_addr()?;
        let service = TraceServiceServer::new(Receiver {
            store: store.clone(),
        });
        let stopped = stop.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(grpc_listener),
                    stopped.cancelled_owned(),
                ),
        );

        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = http_listener.local_addr()?;
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .with_state(store.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
        });
        Ok(Collector {
            grpc,
            http,
            store,
            stop,
        })
    }

    /// Base URL for `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Base URL for `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` (the
    /// exporter appends `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.store
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Waits until `ready` holds for the received spans, at most `within`;
    /// fails naming `what` and listing what arrived.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        ready: impl Fn(&[SpanRecord]) -> bool,
    ) -> Result<Vec<SpanRecord>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> = spans
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.service))
                    .collect();
                bail!("no {what} within {within:?}; received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Receiver {
    store: Store,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.store, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn http_export(
    axum::extract::State(store): axum::extract::State<Store>,
    body: axum::body::Bytes,
) -> (
    axum::http::StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    Vec<u8>,
) {
    let content_type = [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")];
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            keep(&store, req);
            let resp = ExportTraceServiceResponse {
                partial_success: None,
            };
            (
                axum::http::StatusCode::OK,
                content_type,
                resp.encode_to_vec(),
            )
        }
        Err(_) => (
            axum::http::StatusCode::BAD_REQUEST,
            content_type,
            Vec::new(),
        ),
    }
}

fn keep(store: &Store, req: ExportTraceServiceRequest) {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(SpanRecord {
                    service: service.clone(),
                    resource: resource.clone(),
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    kind: SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes(&s.attributes),
                    status: s
                        .status
                        .as_ref()
                        .and_then(|st| StatusCode::try_from(st.code).ok())
                        .unwrap_or(StatusCode::Unset),
                    status_message: s
                        .status
                        .as_ref()
                        .map(|st| st.message.clone())
                        .unwrap_or_default(),
                    events: s
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), attributes(&e.attributes)))
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    match store.lock() {
        Ok(mut s) => s.extend(out),
        Err(p) => p.into_inner().extend(out),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! W3C Trace Context (`traceparent`, `tracestate`) in and out of requests.
//!
//! Part of the gateway → worker contract: every gRPC call a gateway makes on
//! behalf of a traced MCP request carries the context of its CLIENT span in
//! the metadata keys `traceparent` and `tracestate` (the W3C HTTP header
//! names; gRPC metadata are HTTP/2 headers). The W3C format is used
//! whatever `OTEL_PROPAGATORS` says, so both sides always agree.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The trace context carried by `headers` (empty when there is none or it
/// is malformed).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `cx` into `headers` (nothing when `cx` holds no valid span).
pub fn inject(cx: &Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// The context described by a `traceparent` (and optional `tracestate`)
/// value, e.g. from an MCP request's `params._meta`.
pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Context {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// The `traceparent` value of the span in `cx`, if it is valid.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// W3C trace id of the current `tracing` span, when it is traced.
pub fn current_trace_id() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// True when `cx` holds a valid span context (a parent to continue).
pub fn is_valid(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_through_headers() {
        let cx = from_traceparent(TP, Some("vendor=x"));
        assert!(is_valid(&cx));
        let mut headers = http::HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(
            headers.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(TP)
        );
        assert_eq!(traceparent(&extract(&headers)).as_deref(), Some(TP));
    }

    #[test]
    fn malformed_is_no_parent() {
        assert!(!is_valid(&from_traceparent("00-zz-yy-01", None)));
        assert_eq!(traceparent(&Context::new()), None);
    }
}

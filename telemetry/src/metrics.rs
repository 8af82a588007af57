//! Prometheus text exposition of a registry, for `/metrics` endpoints.
//!
//! Each process keeps its own [`prometheus::Registry`] (no global state), so
//! a gateway and a worker running in one test process still expose only
//! their own series.

pub use prometheus;

/// `Content-Type` of [`encode`]'s output (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets for durations in seconds: 1 ms … 60 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The registry's metrics in the Prometheus text format.
pub fn encode(registry: &prometheus::Registry) -> Result<String, prometheus::Error> {
    prometheus::TextEncoder::new().encode_to_string(&registry.gather())
}

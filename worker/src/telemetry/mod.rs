//! How a worker observes itself: traces, metrics and logs.
//!
//! - [`init`] installs logging and, when `OTEL_*` asks for it, OTLP trace
//!   export (service `pgmcp-worker`; `service.instance.id` is the worker's
//!   name, which is also its sessions' `application_name`).
//! - Every RPC of `pgmcp.v1.Worker` gets a SERVER span continuing the
//!   caller's trace ([`server_layer`]); inside a `Query`, [`db`] adds the
//!   pool-acquire span, the DB span and the SQLCommenter comment; the DB
//!   span is named after [`summary`] (`SELECT orders`).
//! - [`metrics`]: the Prometheus registry and the `/metrics` endpoint.

pub mod db;
pub mod metrics;
pub mod summary;

use std::sync::Arc;

use anyhow::Result;
use pgmcp_telemetry::grpc::ServerLayer;
use pgmcp_telemetry::{LogArgs, Options, Telemetry};

use crate::config::Config;

pub use db::TargetTelemetry;
pub use metrics::Metrics;

/// Installs logging and trace export for this worker process.
pub fn init(config: &Config, logs: &LogArgs) -> Result<Telemetry> {
    Telemetry::init(Options {
        service_name: "pgmcp-worker",
        service_version: env!("CARGO_PKG_VERSION"),
        instance_id: config.name.clone(),
        attributes: Vec::new(),
        logs: logs.clone(),
    })
}

/// The tower layer giving each RPC its SERVER span and duration.
pub fn server_layer(metrics: Arc<Metrics>) -> ServerLayer {
    ServerLayer::new(metrics, traced)
}

/// Which calls get a span: the worker's own RPCs, except an `Info` that
/// carries no trace context (that is a readiness probe, not work done for
/// a caller). Health checks and reflection are never traced.
fn traced(method: &str, has_parent: bool) -> bool {
    match method {
        "pgmcp.v1.Worker/Info" => has_parent,
        m => m.starts_with("pgmcp.v1.Worker/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_not_traced() {
        assert!(traced("pgmcp.v1.Worker/Query", false));
        assert!(!traced("pgmcp.v1.Worker/Info", false));
        assert!(traced("pgmcp.v1.Worker/Info", true));
        assert!(!traced("grpc.health.v1.Health/Check", true));
    }
}

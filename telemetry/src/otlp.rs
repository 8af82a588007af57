//! OTLP trace export, configured only by the standard `OTEL_*` variables.
//!
//! Export is on when an endpoint is given (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER=otlp` asks
//! for the default endpoint, and off when `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none`. The protocol is `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (or `…_TRACES_PROTOCOL`): `http/protobuf` (the default, port 4318) or
//! `grpc` (port 4317). Headers, timeouts, sampling (`OTEL_TRACES_SAMPLER`,
//! `…_ARG`), batching (`OTEL_BSP_*`) and resource attributes
//! (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`) are read by the
//! OpenTelemetry SDK and exporter themselves.

use anyhow::{Context, Result, bail};
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_semantic_conventions::resource::{
    SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION,
};
use tracing::Level;
use tracing_subscriber::filter::Targets;

use crate::Options;

/// The crates whose spans are exported. Everything else (h2, hyper, tower,
/// sqlx, rmcp) only reaches the logs.
const OWN_CRATES: [&str; 3] = ["pgmcp_gateway", "pgmcp_worker", "pgmcp_telemetry"];

/// The export settings found in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    protocol: Protocol,
    endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Settings {
    /// Reads the process environment; `None` when export is off.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Settings::from_env`], reading variables through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let get = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let exporter = get("OTEL_TRACES_EXPORTER").map(|v| v.to_ascii_lowercase());
        match exporter.as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => bail!(
                "OTEL_TRACES_EXPORTER={other} is not supported: pgmcp exports traces with `otlp`, or not at all with `none`"
            ),
        }
        let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if endpoint.is_none() && exporter.is_none() {
            return Ok(None);
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .map(|p| p.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use `grpc` (port 4317) or `http/protobuf` (port 4318)"
            ),
        };
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            bail!(
                "the OTLP endpoint `{e}` must be a URL such as http://localhost:4318 (http/protobuf) or http://localhost:4317 (grpc)"
            );
        }
        Ok(Some(Settings { protocol, endpoint }))
    }

    /// `grpc` or `http/protobuf`.
    pub fn protocol(&self) -> &'static str {
        match self.protocol {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The configured endpoint, if any (else the exporter's default).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
}

/// The tracer provider: a batch exporter per the environment, and the
/// process's resource.
pub(crate) fn provider(settings: &Settings, options: &Options) -> Result<SdkTracerProvider> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match settings.protocol {
        Protocol::Grpc => builder.with_tonic().build(),
        Protocol::HttpProtobuf => builder.with_http().build(),
    }
    .context("configuring the OTLP trace exporter from OTEL_EXPORTER_OTLP_* variables")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(options))
        .build())
}

/// `service.name` (default per binary, `OTEL_SERVICE_NAME` wins),
/// `service.version`, `service.instance.id`, the caller's extras, then
/// `OTEL_RESOURCE_ATTRIBUTES` (which may override any of them).
fn resource(options: &Options) -> Resource {
    let mut attrs = vec![
        KeyValue::new(SERVICE_NAME, options.service_name),
        KeyValue::new(SERVICE_VERSION, options.service_version),
        KeyValue::new(SERVICE_INSTANCE_ID, options.instance_id.clone()),
    ];
    attrs.extend(options.attributes.iter().cloned());
    let mut builder = Resource::builder_empty()
        .with_attributes(attrs)
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ]);
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

/// Filter for the OpenTelemetry layer: our own spans and events only.
pub(crate) fn own_spans() -> Targets {
    OWN_CRATES
        .iter()
        .fold(Targets::new(), |t, c| t.with_target(*c, Level::INFO))
}

/// `service.instance.id` of this process: the pod name on Kubernetes
/// (`POD_NAME` from the downward API, else the hostname, which Kubernetes
/// sets to the pod name), else `<hostname>-<pid>`.
pub fn default_instance_id() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.trim().is_empty()
    {
        return pod.trim().to_string();
    }
    let host = hostname();
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        host
    } else {
        format!("{host}-{}", std::process::id())
    }
}

/// This machine's host name (`local` when unknown).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn off_unless_configured() -> Result<()> {
        assert_eq!(settings(&[])?, None);
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "x")])?, None);
        assert_eq!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ])?,
            None
        );
        assert_eq!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_EXPORTER", "none")
            ])?,
            None
        );
        Ok(())
    }

    #[test]
    fn endpoint_and_protocol() -> Result<()> {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])?;
        assert_eq!(s.as_ref().map(Settings::protocol), Some("http/protobuf"));
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])?;
        assert_eq!(s.as_ref().map(Settings::protocol), Some("grpc"));
        assert_eq!(
            s.as_ref().and_then(Settings::endpoint),
            Some("http://c:4317")
        );
        let s = settings(&[("OTEL_TRACES_EXPORTER", "otlp")])?;
        assert_eq!(s.as_ref().and_then(Settings::endpoint), None);
        Ok(())
    }

    #[test]
    fn bad_settings_are_explained() {
        let e = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert!(format!("{:#}", e.err().unwrap_or_else(|| anyhow::anyhow!(""))).contains("grpc"));
        let e = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
        assert!(e.is_err());
        let e = settings(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(e.is_err());
    }
}

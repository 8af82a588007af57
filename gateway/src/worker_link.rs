//! How the gateway talks to a worker: the gRPC client with optional TLS
//! (mTLS when a client certificate is configured), the shared worker token,
//! the caller's principal and request id as metadata, and message size limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_telemetry::grpc::{Client as Traced, ClientLayer};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::call;
use crate::secret::Secret;
use crate::telemetry::Metrics;

/// Metadata key carrying the caller's principal.
pub const PRINCIPAL_KEY: &str = "pgmcp-principal";
/// Metadata key carrying the MCP call's request id.
pub const REQUEST_ID_KEY: &str = "pgmcp-request-id";

/// TLS towards the workers.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA that signed the workers' certificates.
    pub ca: PathBuf,
    /// Client certificate and key (mTLS), if the workers require one.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Name to verify in the workers' certificates, when the URLs hold IPs
    /// or other names.
    pub domain: Option<String>,
}

/// Everything needed to build a worker client.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub connect_timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub token: Option<Secret>,
    pub max_message_bytes: usize,
}

/// The channel type of a worker client: a CLIENT span and the trace context
/// for every call, around the metadata [`Outbound`] adds.
pub type WorkerChannel = Traced<InterceptedService<Channel, Outbound>>;

/// Adds the worker token, principal and request id to every call.
#[derive(Clone)]
pub struct Outbound {
    authorization: Option<AsciiMetadataValue>,
}

impl Interceptor for Outbound {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        if let Some(auth) = &self.authorization {
            md.insert("authorization", auth.clone());
        }
        if let Some(ctx) = call::current() {
            if let Ok(v) = MetadataValue::try_from(percent_encode(&ctx.principal.name)) {
                md.insert(PRINCIPAL_KEY, v);
            }
            if let Ok(v) = MetadataValue::try_from(ctx.request_id.as_str()) {
                md.insert(REQUEST_ID_KEY, v);
            }
        }
        Ok(req)
    }
}

/// Reads the TLS files once; the result configures every endpoint.
fn tls_config(files: &TlsFiles) -> Result<ClientTlsConfig> {
    let ca = std::fs::read(&files.ca)
        .with_context(|| format!("cannot read --tls-ca {}", files.ca.display()))?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = &files.identity {
        let cert = std::fs::read(cert)
            .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
        let key = std::fs::read(key)
            .with_context(|| format!("cannot read --tls-key {}", key.display()))?;
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    if let Some(domain) = &files.domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(tls)
}

/// What every worker channel shares: TLS settings (files read once), the
/// worker token, limits and metrics.
pub struct Link {
    cfg: LinkConfig,
    tls: Option<ClientTlsConfig>,
    authorization: Option<AsciiMetadataValue>,
    metrics: Arc<Metrics>,
}

impl Link {
    pub fn new(cfg: &LinkConfig, metrics: &Arc<Metrics>) -> Result<Self> {
        let tls = cfg.tls.as_ref().map(tls_config).transpose()?;
        let authorization = match &cfg.token {
            Some(t) => Some(
                AsciiMetadataValue::try_from(format!("Bearer {}", t.expose()))
                    .map_err(|_| anyhow::anyhow!("the worker token must be printable ASCII"))?,
            ),
            None => None,
        };
        Ok(Link {
            cfg: cfg.clone(),
            tls,
            authorization,
            metrics: metrics.clone(),
        })
    }

    /// True when workers are reached over TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The channel to the worker at `url`; `domain` is the name to verify in
    /// its certificate when the URL holds an address (a DNS-discovered
    /// worker), unless `--tls-domain` says otherwise. The connection opens
    /// lazily on first use and reconnects after failures.
    pub fn channel(&self, url: &str, domain: Option<&str>) -> Result<WorkerChannel> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("invalid worker address `{url}`"))?
            .connect_timeout(self.cfg.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        match (&self.tls, url.starts_with("https://")) {
            (Some(tls), true) => {
                let mut tls = tls.clone();
                if let (Some(d), None) = (
                    domain,
                    self.cfg.tls.as_ref().and_then(|t| t.domain.as_ref()),
                ) {
                    tls = tls.domain_name(d.to_string());
                }
                endpoint = endpoint
                    .tls_config(tls)
                    .with_context(|| format!("TLS settings for worker `{url}`"))?;
            }
            (Some(_), false) => bail!(
                "worker address `{url}` is plain http:// but --tls-ca is set; use https://{}",
                url.trim_start_matches("http://")
            ),
            (None, true) => bail!(
                "worker address `{url}` is https://: give the CA that signed the workers' certificates with --tls-ca"
            ),
            (None, false) => {}
        }
        let channel = InterceptedService::new(
            endpoint.connect_lazy(),
            Outbound {
                authorization: self.authorization.clone(),
            },
        );
        Ok(tower::Layer::layer(
            &ClientLayer::new(self.metrics.clone(), url),
            channel,
        ))
    }

    /// A worker client on `channel`, with the message size limits.
    pub fn client(&self, channel: WorkerChannel) -> WorkerClient<WorkerChannel> {
        WorkerClient::new(channel)
            .max_decoding_message_size(self.cfg.max_message_bytes)
            .max_encoding_message_size(self.cfg.max_message_bytes)
    }
}

/// Percent-encodes everything outside visible ASCII (and `%`), so any
/// principal name fits in a metadata value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_names_are_encoded() {
        assert_eq!(percent_encode("alice@example.com"), "alice@example.com");
        assert_eq!(percent_encode("Zoë Doe%"), "Zo%C3%AB%20Doe%25");
    }
}

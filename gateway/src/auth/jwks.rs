//! Keys that verify JWT signatures: from a JWKS file, a JWKS URL (fetched at
//! start-up, cached, refreshed in the background and on an unknown `kid`),
//! and an HS256 shared secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::secret::Secret;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long one fetch of the JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// An unknown `kid` triggers a refresh at most this often (or the refresh
/// interval, if shorter).
const MIN_REFETCH: Duration = Duration::from_secs(10);

/// One verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is declared for, if the JWK says.
    pub alg: Option<KeyAlgorithm>,
    pub family: AlgorithmFamily,
    pub key: DecodingKey,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

struct Remote {
    url: http::Uri,
    client: Client<Https, Empty<bytes::Bytes>>,
    keys: RwLock<(Arc<Vec<Key>>, Instant)>,
    refreshing: AtomicBool,
    /// Serialises refreshes triggered by unknown `kid`s.
    refetch: tokio::sync::Mutex<()>,
    refresh_every: Duration,
}

/// Every configured key.
pub struct KeySet {
    fixed: Vec<Key>,
    remote: Option<Arc<Remote>>,
}

impl KeySet {
    /// Loads the keys; a JWKS URL is fetched now, so a wrong URL or an
    /// unreachable issuer fails start-up with a clear message.
    pub async fn load(
        file: Option<&std::path::Path>,
        url: Option<&str>,
        hs256: Option<&Secret>,
        refresh_every: Duration,
    ) -> Result<Self> {
        let mut fixed = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
            fixed.extend(
                parse_jwks(&text)
                    .with_context(|| format!("the JWKS file {} is not valid", path.display()))?,
            );
        }
        if let Some(secret) = hs256 {
            if secret.expose().len() < 32 {
                bail!(
                    "the HS256 secret is {} bytes; use at least 32 random bytes",
                    secret.expose().len()
                );
            }
            fixed.push(Key {
                kid: None,
                alg: Some(KeyAlgorithm::HS256),
                family: AlgorithmFamily::Hmac,
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
            });
        }
        let remote = match url {
            None => None,
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .with_context(|| format!("--jwt-jwks-url `{url}` is not a valid URL"))?;
                if !matches!(uri.scheme_str(), Some("https" | "http")) {
                    bail!("--jwt-jwks-url must be an https:// (or http://) URL, got `{url}`");
                }
                let remote = Arc::new(Remote {
                    url: uri,
                    client: http_client(),
                    keys: RwLock::new((Arc::new(Vec::new()), Instant::now())),
                    refreshing: AtomicBool::new(false),
                    refetch: tokio::sync::Mutex::new(()),
                    refresh_every,
                });
                let keys = remote
                    .fetch()
                    .await
                    .with_context(|| format!("cannot load the JWKS from {url}"))?;
                *remote.keys.write().await = (Arc::new(keys), Instant::now());
                Some(remote)
            }
        };
        if fixed.is_empty() && remote.is_none() {
            bail!(
                "JWT authentication needs keys: --jwt-jwks-file, --jwt-jwks-url or --jwt-hs256-secret-file"
            );
        }
        Ok(KeySet { fixed, remote })
    }

    /// A fixed set of keys (no JWKS URL).
    pub fn fixed(keys: Vec<Key>) -> Self {
        KeySet {
            fixed: keys,
            remote: None,
        }
    }

    /// Keys that may have signed a token with `kid` (any key of `family`
    /// when the token names none).
    pub async fn candidates(&self, kid: Option<&str>, family: AlgorithmFamily) -> Vec<Key> {
        let mut keys = self.matching(kid, family).await;
        if keys.is_empty()
            && kid.is_some()
            && let Some(remote) = &self.remote
        {
            // A key rotated in since the last fetch.
            remote.refresh_now().await;
            keys = self.matching(kid, family).await;
        }
        keys
    }

    async fn matching(&self, kid: Option<&str>, family: AlgorithmFamily) -> Vec<Key> {
        let remote = match &self.remote {
            Some(r) => r.current().await,
            None => Arc::new(Vec::new()),
        };
        self.fixed
            .iter()
            .chain(remote.iter())
            .filter(|k| k.family == family)
            .filter(|k| match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A key without an id (the HS256 secret, a JWKS without
                // `kid`s) may have signed any token of its family.
                (Some(_), None) => true,
                (None, _) => true,
            })
            .cloned()
            .collect()
    }
}

impl Remote {
    /// The cached keys; starts a background refresh when they are old.
    async fn current(self: &Arc<Self>) -> Arc<Vec<Key>> {
        let (keys, at) = self.keys.read().await.clone();
        if at.elapsed() >= self.refresh_every && !self.refreshing.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                me.refresh().await;
                me.refreshing.store(false, Ordering::Release);
            });
        }
        keys
    }

    /// Refreshes now unless that happened very recently.
    async fn refresh_now(&self) {
        let _one_at_a_time = self.refetch.lock().await;
        let at = self.keys.read().await.1;
        if at.elapsed() >= MIN_REFETCH.min(self.refresh_every) {
            self.refresh().await;
        }
    }

    async fn refresh(&self) {
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), url = %self.url, "JWKS refreshed");
                *self.keys.write().await = (Arc::new(keys), Instant::now());
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %format!("{e:#}"), "JWKS refresh failed; keeping the previous keys");
                // Try again after the normal interval, not on every request.
                self.keys.write().await.1 = Instant::now();
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>> {
        let req = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .context("building the JWKS request")?;
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
            .await
            .with_context(|| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
            .context("request failed")?;
        if !resp.status().is_success() {
            bail!("the server answered {}", resp.status());
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .context("the body did not arrive in time")?
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
        parse_jwks(&body)
    }
}

fn http_client() -> Client<Https, Empty<bytes::Bytes>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates; https JWKS URLs cannot be verified");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            match config {
                Ok(c) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(c),
                // ring supports the default protocol versions; unreachable in practice.
                Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder_with_protocol_versions(&[
                        &rustls::version::TLS13,
                    ])
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                ),
            }
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The usable signature keys of a JWKS document. Keys for encryption, of
/// unknown types or that fail to parse are skipped; a document with no
/// usable key is an error.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    let list = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .context("no `keys` array")?;
    let mut keys = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(raw.clone()) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(index = i, error = %e, "skipping an unreadable JWK");
                continue;
            }
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
            AlgorithmParameters::OctetKey(_) => AlgorithmFamily::Hmac,
            AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
            _ => continue,
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg: jwk.common.key_algorithm,
                family,
                key,
            }),
            Err(e) => tracing::warn!(index = i, error = %e, "skipping an unusable JWK"),
        }
    }
    if keys.is_empty() {
        bail!("it holds no usable signature key");
    }
    Ok(keys)
}

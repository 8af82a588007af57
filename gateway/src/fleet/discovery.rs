//! Where the workers are: `--workers` entries (and the lines of
//! `--workers-file`), each a worker URL or `dns://name:port`. DNS names are
//! resolved again on every tick, so the A records of a Kubernetes headless
//! Service (one per ready pod) become workers as pods come and go; the file
//! is read again on every tick too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One configured source of workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A worker URL (`http://host:port` or `https://host:port`).
    Url(String),
    /// Every address `host` resolves to, on `port`.
    Dns { host: String, port: u16 },
}

impl Entry {
    /// Parses a `--workers` item.
    pub fn parse(s: &str) -> Result<Entry> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("dns://") {
            let (host, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .with_context(|| {
                    format!(
                        "worker entry `{s}` needs a port, as in dns://pgmcp-worker-headless:50051"
                    )
                })?;
            let port: u16 = port
                .parse()
                .with_context(|| format!("worker entry `{s}`: `{port}` is not a port"))?;
            if host.is_empty() {
                bail!("worker entry `{s}` names no host");
            }
            return Ok(Entry::Dns {
                host: host.to_string(),
                port,
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Entry::Url(s.trim_end_matches('/').to_string()));
        }
        bail!(
            "worker entry `{s}` must be a URL such as http://127.0.0.1:50051 or dns://name:port \
             (every address of the name becomes a worker)"
        )
    }
}

/// Worker URLs in order, each with an optional TLS name; no duplicates.
#[derive(Debug, Default)]
pub struct Wanted(pub Vec<(String, Option<String>)>);

impl Wanted {
    pub fn insert(&mut self, url: String, domain: Option<String>) {
        if !self.contains(&url) {
            self.0.push((url, domain));
        }
    }

    pub fn contains(&self, url: &str) -> bool {
        self.0.iter().any(|(u, _)| u == url)
    }

    pub fn get(&self, url: &str) -> Option<&Option<String>> {
        self.0.iter().find(|(u, _)| u == url).map(|(_, d)| d)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where workers are listed, and how often to look again.
#[derive(Debug, Clone)]
pub struct Sources {
    pub entries: Vec<Entry>,
    pub file: Option<PathBuf>,
    pub interval: Duration,
}

impl Sources {
    /// True when the set of workers can change while running.
    pub fn dynamic(&self) -> bool {
        self.file.is_some() || self.entries.iter().any(|e| matches!(e, Entry::Dns { .. }))
    }
}

/// The worker URLs the sources name now, in the order they are listed, each
/// with the DNS name to verify in its certificate (for DNS-discovered
/// workers). A name that does not
/// resolve keeps the addresses it had (`previous`), so a DNS hiccup does
/// not empty the fleet; an unreadable file keeps its entries the same way.
pub async fn resolve(
    sources: &Sources,
    scheme: &str,
    previous: &mut BTreeMap<String, Vec<String>>,
    file_entries: &mut Vec<Entry>,
) -> Wanted {
    if let Some(path) = &sources.file {
        match read_file(path) {
            Ok(entries) => *file_entries = entries,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "keeping the workers read before"),
        }
    }
    let mut out = Wanted::default();
    for entry in sources.entries.iter().chain(file_entries.iter()) {
        match entry {
            Entry::Url(url) => {
                out.insert(url.clone(), None);
            }
            Entry::Dns { host, port } => {
                let key = format!("{host}:{port}");
                let urls = match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addrs) => {
                        let mut urls: Vec<String> =
                            addrs.map(|a| format!("{scheme}://{a}")).collect();
                        urls.sort();
                        urls.dedup();
                        previous.insert(key, urls.clone());
                        urls
                    }
                    Err(e) => {
                        tracing::warn!(name = %host, error = %e, "cannot resolve worker name; keeping its last addresses");
                        previous.get(&key).cloned().unwrap_or_default()
                    }
                };
                for url in urls {
                    out.insert(url, Some(host.clone()));
                }
            }
        }
    }
    out
}

/// The entries of a workers file: one per line; `#` starts a comment.
pub fn read_file(path: &std::path::Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --workers-file {}", path.display()))?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| Entry::parse(l).with_context(|| format!("in {}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_or_explain() {
        assert_eq!(
            Entry::parse("http://127.0.0.1:50051/").ok(),
            Some(Entry::Url("http://127.0.0.1:50051".into()))
        );
        assert_eq!(
            Entry::parse(" dns://pgmcp-worker-headless:50051").ok(),
            Some(Entry::Dns {
                host: "pgmcp-worker-headless".into(),
                port: 50051
            })
        );
        for bad in [
            "dns://name",
            "dns://:50051",
            "dns://name:http",
            "127.0.0.1:50051",
        ] {
            let err = Entry::parse(bad).err().map(|e| format!("{e:#}"));
            assert!(
                err.as_ref().is_some_and(|e| e.contains(bad.trim())),
                "{bad}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn names_resolve_to_one_worker_per_address() -> Result<()> {
        let sources = Sources {
            entries: vec![
                Entry::parse("dns://localhost:50051")?,
                Entry::parse("http://10.0.0.1:1")?,
            ],
            file: None,
            interval: Duration::from_secs(1),
        };
        let mut previous = BTreeMap::new();
        let mut file = Vec::new();
        let got = resolve(&sources, "http", &mut previous, &mut file).await;
        assert!(got.contains("http://127.0.0.1:50051"), "{got:?}");
        assert_eq!(
            got.get("http://127.0.0.1:50051"),
            Some(&Some("localhost".to_string()))
        );
        assert_eq!(got.get("http://10.0.0.1:1"), Some(&None));
        // A name that stops resolving keeps its last addresses.
        previous.insert("nope.invalid:1".into(), vec!["http://10.9.9.9:1".into()]);
        let sources = Sources {
            entries: vec![Entry::parse("dns://nope.invalid:1")?],
            ..sources
        };
        let got = resolve(&sources, "http", &mut previous, &mut file).await;
        assert_eq!(
            got.0,
            vec![(
                "http://10.9.9.9:1".to_string(),
                Some("nope.invalid".to_string())
            )]
        );
        Ok(())
    }

    #[test]
    fn files_list_entries_with_comments() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("workers");
        std::fs::write(
            &path,
            "# fleet\nhttp://127.0.0.1:1\n\n dns://w:2 # headless\n",
        )?;
        let entries = read_file(&path)?;
        assert_eq!(
            entries,
            vec![
                Entry::Url("http://127.0.0.1:1".into()),
                Entry::Dns {
                    host: "w".into(),
                    port: 2
                }
            ]
        );
        std::fs::write(&path, "nonsense\n")?;
        let err = read_file(&path).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("nonsense")));
        Ok(())
    }
}

//! The Kubernetes manifests of `deploy/kubernetes/`, rendered by the pinned
//! kubectl (`deploy/validate --render-only`) and read the way the kubelet
//! would run them: which program, with which arguments, environment, files
//! and ports, and which probes decide that a container is up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::Value;

/// The workspace root, where `deploy/` lives.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every object one kustomization renders to.
pub struct Manifests {
    /// The kustomization, relative to `deploy/kubernetes/` (e.g. `overlays/dev`).
    pub path: String,
    pub objects: Vec<Value>,
}

impl Manifests {
    /// Renders the kustomization at `deploy/kubernetes/<path>` with the
    /// pinned kubectl (installed on first use by `deploy/validate`). Blocking.
    pub fn render(path: &str) -> Result<Self> {
        Self::render_all(&[path])?.pop().context("nothing rendered")
    }

    /// Renders several kustomizations (one run of `deploy/validate`). Blocking.
    pub fn render_all(paths: &[&str]) -> Result<Vec<Self>> {
        let dir = tempfile::tempdir()?;
        let script = workspace_root().join("deploy/validate");
        let output = Command::new(&script)
            .arg("--render-only")
            .arg(dir.path())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "deploy/validate --render-only failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        paths
            .iter()
            .map(|path| {
                let file = dir.path().join(format!("{}.yaml", path.replace('/', "_")));
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("no rendering of deploy/kubernetes/{path}"))?;
                Self::parse(path, &text)
            })
            .collect()
    }

    /// Parses multi-document YAML as rendered by `kubectl kustomize`.
    pub fn parse(path: &str, yaml: &str) -> Result<Self> {
        let mut objects = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value = Value::deserialize(doc)
                .with_context(|| format!("parsing the rendering of {path}"))?;
            if !value.is_null() {
                objects.push(value);
            }
        }
        Ok(Manifests {
            path: path.to_string(),
            objects,
        })
    }

    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_string();
        self.objects
            .iter()
            .filter(move |o| o["kind"] == kind.as_str())
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|o| o["metadata"]["name"] == name)
    }

    /// Every container of every workload (Deployment, StatefulSet, DaemonSet).
    pub fn containers(&self) -> Vec<Container<'_>> {
        self.objects
            .iter()
            .filter(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some("Deployment" | "StatefulSet" | "DaemonSet")
                )
            })
            .flat_map(|w| {
                w["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |c| Container {
                        workload: w,
                        spec: c,
                    })
            })
            .collect()
    }

    /// The data of ConfigMap `name`, if rendered.
    pub fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let cm = self.get("ConfigMap", name)?;
        Some(strings(&cm["data"]))
    }

    /// The decoded data of Secret `name`, if rendered (the production
    /// Secret is created by the operator and is not).
    pub fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        let Some(secret) = self.get("Secret", name) else {
            return Ok(None);
        };
        let mut out = strings(&secret["stringData"]);
        for (key, b64) in strings(&secret["data"]) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.split_whitespace().collect::<String>())
                .with_context(|| format!("Secret {name}: `{key}` is not base64"))?;
            out.insert(key, String::from_utf8(bytes)?);
        }
        Ok(Some(out))
    }

    /// The rendered Service that the DNS name `host` names for a client in
    /// namespace `namespace` (`svc`, `svc.ns`, `svc.ns.svc`,
    /// `svc.ns.svc.cluster.local`), if any.
    pub fn service(&self, host: &str, namespace: &str) -> Option<&Value> {
        let labels: Vec<&str> = host.split('.').collect();
        let (svc, ns) = match labels.as_slice() {
            [svc] => (*svc, namespace),
            [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] => (*svc, *ns),
            _ => return None,
        };
        self.of_kind("Service")
            .find(|s| s["metadata"]["name"] == svc && namespace_of(s) == ns)
    }

    /// Where `host:port` leads inside the cluster, for a client in namespace
    /// `namespace`: the Service the host names (`svc`, `svc.ns`,
    /// `svc.ns.svc`, `svc.ns.svc.cluster.local`), the port of that Service,
    /// and the container (and its port) that the Service sends it to.
    /// `None` when the host names no rendered Service.
    pub fn service_target(
        &self,
        host: &str,
        port: u16,
        namespace: &str,
    ) -> Result<Option<(&Value, Container<'_>, u16)>> {
        let Some(service) = self.service(host, namespace) else {
            return Ok(None);
        };
        let svc = service["metadata"]["name"].as_str().unwrap_or("");
        let ns = namespace_of(service);
        let service_port = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(u64::from(port)))
            .with_context(|| format!("Service {svc} has no port {port}"))?;
        let target = match &service_port["targetPort"] {
            Value::Null => Value::from(port),
            other => other.clone(),
        };
        let selector = strings(&service["spec"]["selector"]);
        if selector.is_empty() {
            bail!("Service {svc} has no selector");
        }
        for container in self.containers() {
            let labels = container.pod_labels();
            if container.namespace() != ns
                || !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            {
                continue;
            }
            if let Ok(container_port) = container.resolve_port(&target) {
                return Ok(Some((service, container, container_port)));
            }
        }
        bail!("Service {svc} port {port} (target {target}) leads to no container port")
    }
}

/// Where a container's environment variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A literal or a ConfigMap value.
    Literal(String),
    /// A Secret key; `value` is `None` when the Secret is not rendered.
    Secret {
        name: String,
        key: String,
        value: Option<String>,
    },
    /// The downward API (`fieldRef.fieldPath`).
    Field(String),
}

/// A file that a Secret or ConfigMap volume puts into the container.
#[derive(Debug, Clone)]
pub struct MountedFile {
    /// Absolute path inside the container.
    pub path: String,
    /// The content; `None` when the Secret is not rendered.
    pub content: Option<String>,
    /// `Secret/NAME key` or `ConfigMap/NAME key`, for messages.
    pub origin: String,
}

/// How the kubelet decides that a container is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Http { path: String, port: u16 },
    Grpc { port: u16, service: String },
}

/// One container of a workload.
#[derive(Clone, Copy)]
pub struct Container<'a> {
    pub workload: &'a Value,
    pub spec: &'a Value,
}

impl<'a> Container<'a> {
    /// `Kind/name` of the workload.
    pub fn workload_id(&self) -> String {
        format!(
            "{}/{}",
            self.workload["kind"].as_str().unwrap_or("?"),
            self.workload_name()
        )
    }

    pub fn workload_name(&self) -> &'a str {
        self.workload["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &'a str {
        self.spec["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> &'a str {
        namespace_of(self.workload)
    }

    pub fn image(&self) -> &'a str {
        self.spec["image"].as_str().unwrap_or("")
    }

    pub fn pod_spec(&self) -> &'a Value {
        &self.workload["spec"]["template"]["spec"]
    }

    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        strings(&self.workload["spec"]["template"]["metadata"]["labels"])
    }

    pub fn command(&self) -> Vec<String> {
        string_list(&self.spec["command"])
    }

    pub fn args(&self) -> Vec<String> {
        string_list(&self.spec["args"])
    }

    /// Declared container ports: (name, port).
    pub fn ports(&self) -> Vec<(Option<String>, u16)> {
        self.spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p["containerPort"].as_u64()?).ok()?;
                Some((p["name"].as_str().map(str::to_string), port))
            })
            .collect()
    }

    /// A port given as a number or as the name of a declared container port.
    pub fn resolve_port(&self, port: &Value) -> Result<u16> {
        if let Some(n) = port.as_u64() {
            return Ok(u16::try_from(n)?);
        }
        let name = port
            .as_str()
            .context("a port is neither a number nor a name")?;
        self.ports()
            .into_iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, p)| p)
            .with_context(|| {
                format!(
                    "{} container {} declares no port named `{name}`",
                    self.workload_id(),
                    self.name()
                )
            })
    }

    /// The environment, in the kubelet's order: `envFrom` sources, then
    /// `env` entries, later ones replacing earlier ones.
    pub fn env(&self, manifests: &Manifests) -> Result<BTreeMap<String, EnvValue>> {
        let mut env = BTreeMap::new();
        for source in self.spec["envFrom"].as_array().into_iter().flatten() {
            let prefix = source["prefix"].as_str().unwrap_or("");
            if let Some(name) = source["configMapRef"]["name"].as_str() {
                let data = manifests.config_map(name).with_context(|| {
                    format!("envFrom names ConfigMap {name}, which is not rendered")
                })?;
                for (k, v) in data {
                    env.insert(format!("{prefix}{k}"), EnvValue::Literal(v));
                }
            } else if let Some(name) = source["secretRef"]["name"].as_str() {
                let data = manifests.secret(name)?.with_context(|| {
                    format!(
                        "envFrom names Secret {name}, which is not rendered: its keys are unknown"
                    )
                })?;
                for (k, v) in data {
                    env.insert(
                        format!("{prefix}{k}"),
                        EnvValue::Secret {
                            name: name.to_string(),
                            key: k,
                            value: Some(v),
                        },
                    );
                }
            } else {
                bail!("unsupported envFrom source {source}");
            }
        }
        for var in self.spec["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().context("an env entry has no name")?;
            let from = &var["valueFrom"];
            let value = if let Some(v) = var["value"].as_str() {
                EnvValue::Literal(v.to_string())
            } else if let Some(cm) = from["configMapKeyRef"]["name"].as_str() {
                let key = from["configMapKeyRef"]["key"].as_str().unwrap_or("");
                let data = manifests.config_map(cm).with_context(|| {
                    format!("{name} names ConfigMap {cm}, which is not rendered")
                })?;
                EnvValue::Literal(
                    data.get(key)
                        .with_context(|| format!("ConfigMap {cm} has no key {key}"))?
                        .clone(),
                )
            } else if let Some(secret) = from["secretKeyRef"]["name"].as_str() {
                let key = from["secretKeyRef"]["key"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let value = match manifests.secret(secret)? {
                    Some(data) => Some(
                        data.get(&key)
                            .with_context(|| format!("Secret {secret} has no key {key}"))?
                            .clone(),
                    ),
                    None => None,
                };
                EnvValue::Secret {
                    name: secret.to_string(),
                    key,
                    value,
                }
            } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
                EnvValue::Field(path.to_string())
            } else if var.get("value").is_some() || var.get("valueFrom").is_none() {
                EnvValue::Literal(String::new())
            } else {
                bail!("unsupported env source for {name}: {from}");
            };
            env.insert(name.to_string(), value);
        }
        Ok(env)
    }

    /// The files that Secret and ConfigMap volumes put into the container.
    pub fn files(&self, manifests: &Manifests) -> Result<Vec<MountedFile>> {
        let volumes = self.pod_spec()["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut files = Vec::new();
        for mount in self.spec["volumeMounts"].as_array().into_iter().flatten() {
            let vname = mount["name"].as_str().unwrap_or("");
            let mount_path = mount["mountPath"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('/');
            let claims = &self.workload["spec"]["volumeClaimTemplates"];
            let Some(volume) = volumes.iter().find(|v| v["name"] == vname) else {
                let claimed = claims
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["metadata"]["name"] == vname);
                ensure!(claimed, "volumeMount {vname} names no volume");
                continue;
            };
            let (kind, source, data) = if let Some(name) = volume["secret"]["secretName"].as_str() {
                ("Secret", &volume["secret"], manifests.secret(name)?)
            } else if let Some(name) = volume["configMap"]["name"].as_str() {
                (
                    "ConfigMap",
                    &volume["configMap"],
                    manifests.config_map(name),
                )
            } else {
                continue;
            };
            let object = source["secretName"]
                .as_str()
                .or(source["name"].as_str())
                .unwrap_or("");
            let items: Vec<(String, String)> = match source["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap_or("").to_string(),
                            i["path"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect(),
                None => match &data {
                    Some(d) => d.keys().map(|k| (k.clone(), k.clone())).collect(),
                    None => bail!(
                        "{kind} {object} is mounted whole at {mount_path} but not rendered: \
                         list its keys under `items`"
                    ),
                },
            };
            for (key, path) in items {
                let content = match &data {
                    Some(d) => Some(
                        d.get(&key)
                            .with_context(|| format!("{kind} {object} has no key {key}"))?
                            .clone(),
                    ),
                    None => None,
                };
                files.push(MountedFile {
                    path: format!("{mount_path}/{path}"),
                    content,
                    origin: format!("{kind}/{object} {key}"),
                });
            }
        }
        Ok(files)
    }

    /// The startup, liveness and readiness probes that are set.
    pub fn probes(&self) -> Result<Vec<(&'static str, Probe)>> {
        let mut out = Vec::new();
        for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let probe = &self.spec[kind];
            if probe.is_null() {
                continue;
            }
            let parsed = if !probe["httpGet"].is_null() {
                Probe::Http {
                    path: probe["httpGet"]["path"].as_str().unwrap_or("/").to_string(),
                    port: self.resolve_port(&probe["httpGet"]["port"])?,
                }
            } else if !probe["grpc"].is_null() {
                Probe::Grpc {
                    port: self.resolve_port(&probe["grpc"]["port"])?,
                    service: probe["grpc"]["service"].as_str().unwrap_or("").to_string(),
                }
            } else {
                bail!(
                    "{} {kind}: only httpGet and grpc probes are understood",
                    self.workload_id()
                );
            };
            out.push((kind, parsed));
        }
        Ok(out)
    }

    /// Seconds of the `preStop` sleep, if any.
    pub fn pre_stop_sleep(&self) -> Option<u64> {
        self.spec["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64()
    }

    /// The pod's `terminationGracePeriodSeconds` (Kubernetes' default: 30).
    pub fn termination_grace_seconds(&self) -> u64 {
        self.pod_spec()["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30)
    }
}

fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
}

/// A YAML mapping of strings (labels, ConfigMap data) as a map.
fn strings(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

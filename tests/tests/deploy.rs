//! The Kubernetes manifests (deploy/kubernetes/) and the binaries kept in
//! step. Every pgmcp container of every kustomization is started on loopback
//! as the kubelet would start it: its command and args, its environment from
//! literals, ConfigMaps, Secrets and the downward API, its Secret files and
//! its ports. Each must pass its own startup, liveness and readiness probes
//! (gateway `/healthz` and `/readyz`, worker gRPC health); gateways must
//! reach the workers through the Service URL they are given, accept the Host
//! names they are reached by (Service DNS names, Ingress hosts) and refuse
//! others; every process must stop cleanly on SIGTERM within the grace period
//! left after its preStop sleep, and that grace period must cover the longest
//! call the container's configuration allows and the process's own drain
//! (worker drain delay + shutdown grace, gateway shutdown grace). A gateway's
//! `dns://` worker entry must name a rendered headless Service.
//!
//! Gateways must require authentication (they listen on every interface),
//! workers must require the gateways' worker token, and every call a gateway
//! makes with a client's token must reach a worker. Every client tries a
//! harmless `execute`: those without `write` must be refused everywhere;
//! base, dev and production write nothing, and in shared-fleet the backend's
//! writers write while the analysts are refused. Every pgmcp container
//! must be annotated for Prometheus and serve its metrics there; dev and
//! production must send traces to their collector.
//!
//! The only substitutions: listen addresses `0.0.0.0:P` keep their address
//! (so the gateway's refusal to serve a non-loopback address without
//! authentication applies as in the cluster) but get a free port instead of
//! P (which must be a declared containerPort), and are probed on loopback; a
//! URL whose host names a rendered Service leads to the loopback port of the
//! container that Service selects; the database URL (from the Secret)
//! becomes a throwaway cluster; Secrets the operator creates (not rendered)
//! are filled from their `*.example.yaml` templates, each placeholder
//! (`REPLACE-WITH-…`, or `sha256:REPLACE-WITH-…`) becoming a fresh random
//! token (or its digest); mount paths become a temporary directory; the pod
//! name is made up; telemetry endpoints point at a closed loopback port.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgmcp_tests::Pg;
use pgmcp_tests::kube::{Container, EnvValue, Manifests, Probe};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// The image every pgmcp container must run: the workspace's version.
const IMAGE: &str = concat!("ghcr.io/pgmcp/pgmcp:", env!("CARGO_PKG_VERSION"));
const IMAGE_REPOSITORY: &str = "ghcr.io/pgmcp/pgmcp";
/// How long a container may take to pass its probes.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_runs_as_written() -> Result<()> {
    read_only(&runs_as_written("base").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_overlay_runs_as_written() -> Result<()> {
    read_only(&runs_as_written("overlays/dev").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_overlay_runs_as_written() -> Result<()> {
    read_only(&runs_as_written("overlays/production").await?)
}

/// base, dev and production serve the database read-only (deploy/README.md):
/// no client's `execute` gets through, whatever its token allows.
fn read_only(ran: &Ran) -> Result<()> {
    ensure!(
        ran.written.is_empty(),
        "these workers should serve the database read-only, yet {:?} wrote: {:?}",
        ran.written,
        ran.writes
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_fleet_overlay_runs_as_written() -> Result<()> {
    let fleet = runs_as_written("overlays/shared-fleet").await?;
    ensure!(
        fleet.gateways >= 2 && fleet.workers == 1,
        "shared-fleet: expected two gateway Deployments sharing one worker Deployment, got {} gateways and {} workers",
        fleet.gateways,
        fleet.workers
    );
    // The gateways differ in authentication and toolsets: the analysts'
    // tokens read (core tools only), the backend's tokens also write, and
    // it serves the DBA toolset.
    let tools = |name: &str| {
        fleet
            .tools
            .get(&format!("Deployment/{name}"))
            .with_context(|| format!("shared-fleet has no {name}: {:?}", fleet.tools.keys()))
    };
    let analysts = tools("pgmcp-gateway-analysts")?;
    let backend = tools("pgmcp-gateway-backend")?;
    ensure!(
        analysts.contains("query") && !analysts.contains("execute"),
        "the analysts' tokens should read and not write; they see {analysts:?}"
    );
    ensure!(
        !analysts.contains("database_health"),
        "the analysts' gateway should serve only the core toolset; it lists {analysts:?}"
    );
    ensure!(
        backend.contains("execute") && backend.contains("database_health"),
        "the backend's tokens should write, and its gateway serve the DBA toolset; they see {backend:?}"
    );

    // The shared workers write for the backend's writers, and the
    // analysts' tokens are refused: the workers serve the database
    // read-write, and only the tokens keep the analysts from writing.
    let writes = |name: &str| {
        fleet
            .writes
            .get(&format!("Deployment/{name}"))
            .with_context(|| format!("shared-fleet has no {name}"))
    };
    let backend_writes = writes("pgmcp-gateway-backend")?;
    let writers: Vec<&str> = backend_writes
        .iter()
        .filter(|(c, _)| c.writes)
        .map(|(c, _)| c.principal.as_str())
        .collect();
    ensure!(
        !writers.is_empty(),
        "none of the backend's tokens grants write: {backend_writes:?}"
    );
    for (client, wrote) in backend_writes.iter().filter(|(c, _)| c.writes) {
        ensure!(
            *wrote == Wrote::Rows(1),
            "the backend's {} should write through the shared workers (PGMCP_MODE read-write), \
             but execute gave {wrote:?}",
            client.principal
        );
        ensure!(
            fleet.written.contains(&client.principal),
            "execute as {} reported success, but its row is not in the table ({:?})",
            client.principal,
            fleet.written
        );
    }
    let analysts_writes = writes("pgmcp-gateway-analysts")?;
    ensure!(
        !analysts_writes.is_empty(),
        "the analysts' gateway has no client to try a write with"
    );
    for (client, wrote) in analysts_writes {
        ensure!(
            !client.writes,
            "the analysts' {} holds a write permission; the shared workers would let it write",
            client.principal
        );
        ensure!(
            matches!(wrote, Wrote::Refused { kind, .. } if kind == "permission_denied"),
            "the analysts' {} should be refused execute (permission_denied), got {wrote:?}",
            client.principal
        );
    }
    let mut expected: Vec<&str> = writers.clone();
    expected.sort_unstable();
    let mut written: Vec<&str> = fleet.written.iter().map(String::as_str).collect();
    written.sort_unstable();
    ensure!(
        written == expected,
        "only the backend's writers ({expected:?}) should have written; the table holds rows of {written:?}"
    );
    Ok(())
}

/// The dev overlay's PostgreSQL holds the demo database of `pgmcp up`, and
/// the workers' Secret reaches it with the demo role's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_overlay_database_is_the_demo_of_pgmcp_up() -> Result<()> {
    let m = tokio::task::spawn_blocking(|| Manifests::render("overlays/dev")).await??;
    let demo_sql = include_str!("../../cli/src/demo.sql");

    let postgres = m
        .containers()
        .into_iter()
        .find(|c| c.workload["kind"] == "StatefulSet" && c.name() == "postgres")
        .context("the dev overlay has no postgres StatefulSet")?;
    let files = postgres.files(&m)?;
    let init: BTreeMap<&str, &str> = files
        .iter()
        .filter_map(|f| {
            let name = f.path.strip_prefix("/docker-entrypoint-initdb.d/")?;
            Some((name, f.content.as_deref()?))
        })
        .collect();
    ensure!(
        init.get("10-demo.sql") == Some(&demo_sql),
        "deploy/kubernetes/overlays/dev/initdb/10-demo.sql differs from cli/src/demo.sql: copy it again"
    );
    let password_script = init
        .get("20-demo-password.sh")
        .context("no 20-demo-password.sh among the init scripts")?;

    // The URL the workers get.
    let worker = m
        .containers()
        .into_iter()
        .find(|c| c.command().first().map(String::as_str) == Some("pgmcp-worker"))
        .context("no worker")?;
    let url_file = match worker.env(&m)?.get("DATABASE_URL_FILE") {
        Some(EnvValue::Literal(path)) => path.clone(),
        other => bail!("the worker's DATABASE_URL_FILE is {other:?}"),
    };
    let url = worker
        .files(&m)?
        .into_iter()
        .find(|f| f.path == url_file)
        .and_then(|f| f.content)
        .context("the dev worker's database URL file is not rendered")?;
    let rest = url
        .strip_prefix("postgres://")
        .context("the URL is not postgres://")?;
    let (creds, rest) = rest.split_once('@').context("no credentials in the URL")?;
    let (user, password) = creds.split_once(':').context("no password in the URL")?;
    let (authority, rest) = rest.split_once('/').context("no database in the URL")?;
    let database = rest.split('?').next().unwrap_or(rest);
    let (host, port) = authority.split_once(':').context("no port in the URL")?;

    ensure!(
        demo_sql.contains(&format!("CREATE ROLE {user} LOGIN")),
        "the URL's user {user} is not the role demo.sql creates"
    );
    let env = postgres.env(&m)?;
    ensure!(
        env.get("POSTGRES_DB") == Some(&EnvValue::Literal(database.to_string())),
        "POSTGRES_DB is not the URL's database {database}"
    );
    let (_, target, target_port) = m
        .service_target(host, port.parse()?, worker.namespace())?
        .with_context(|| format!("the URL's host {host}:{port} names no Service"))?;
    ensure!(
        target.name() == "postgres" && target_port == 5432,
        "{host}:{port} does not lead to PostgreSQL"
    );
    // The password that 20-demo-password.sh gives the role is the URL's.
    let password_file = files
        .iter()
        .find(|f| password_script.contains(&f.path))
        .context("20-demo-password.sh reads no mounted file")?;
    ensure!(
        password_file.content.as_deref() == Some(password),
        "the demo role's password ({}) differs from the one in the workers' URL",
        password_file.origin
    );
    Ok(())
}

/// Every pod of every kustomization: startup, liveness and readiness probes,
/// a preStop hook inside its grace period, an image by explicit tag, and the
/// security context of the `restricted` Pod Security Standard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_is_probed_drained_pinned_and_restricted() -> Result<()> {
    let all = tokio::task::spawn_blocking(|| {
        Manifests::render_all(&[
            "base",
            "overlays/dev",
            "overlays/production",
            "overlays/shared-fleet",
        ])
    })
    .await??;
    for m in &all {
        let path = &m.path;
        let containers = m.containers();
        ensure!(!containers.is_empty(), "{path} renders no workload");
        for c in containers {
            let id = format!("{path}: {} container {}", c.workload_id(), c.name());
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                ensure!(!c.spec[probe].is_null(), "{id} has no {probe}");
            }
            let pre_stop = &c.spec["lifecycle"]["preStop"];
            ensure!(!pre_stop.is_null(), "{id} has no preStop hook");
            ensure!(
                c.pre_stop_sleep().unwrap_or(0) < c.termination_grace_seconds(),
                "{id}: the preStop sleep uses up the whole grace period"
            );
            let image = c.image();
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            ensure!(
                !tag.is_empty() && !tag.contains('/') && tag != "latest",
                "{id}: image {image} has no explicit tag"
            );
            let pod = &c.pod_spec()["securityContext"];
            let sc = &c.spec["securityContext"];
            ensure!(
                pod["runAsNonRoot"] == true && sc["runAsNonRoot"] == true,
                "{id} may run as root"
            );
            ensure!(
                sc["readOnlyRootFilesystem"] == true,
                "{id}: writable root filesystem"
            );
            ensure!(
                sc["allowPrivilegeEscalation"] == false,
                "{id}: privilege escalation allowed"
            );
            ensure!(
                sc["capabilities"]["drop"] == serde_json::json!(["ALL"]),
                "{id} keeps capabilities"
            );
            ensure!(
                pod["seccompProfile"]["type"] == "RuntimeDefault",
                "{id}: no RuntimeDefault seccomp profile"
            );
            ensure!(
                c.pod_spec()["automountServiceAccountToken"] == false,
                "{id} mounts a ServiceAccount token"
            );
        }
    }
    Ok(())
}

/// What one kustomization ran.
struct Ran {
    gateways: usize,
    workers: usize,
    /// Per gateway workload: the tools its clients' tokens see, together.
    tools: BTreeMap<String, BTreeSet<String>>,
    /// Per gateway workload: what became of each client's `execute` of an
    /// INSERT into the test's table.
    writes: BTreeMap<String, Vec<(Client, Wrote)>>,
    /// The principals whose rows the table holds at the end.
    written: Vec<String>,
}

/// The outcome of one `execute` call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wrote {
    /// Committed; the rows it affected.
    Rows(u64),
    /// A tool error (`kind` as in `structuredContent.error.kind`), or
    /// `kind` "not_served" when the gateway does not serve `execute`.
    Refused { kind: String, message: String },
}

/// The table every `execute` of these tests inserts into (harmless: a
/// throwaway database).
const WRITES_TABLE: &str = "deploy_writes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker,
    Gateway,
}

/// A container made ready to run on loopback.
struct Plan<'a> {
    container: Container<'a>,
    role: Role,
    program: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    /// Files to write: local path and content.
    files: Vec<(PathBuf, String)>,
    /// containerPort → loopback port.
    ports: BTreeMap<u16, u16>,
    /// The gateway's clients with a token this test can present (empty
    /// without authentication).
    clients: Vec<Client>,
    /// Where the process's output goes.
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// One client of a gateway's static tokens: `PRINCIPAL PERMISSIONS TOKEN`.
#[derive(Debug, Clone)]
struct Client {
    principal: String,
    /// Whether its permissions grant `write` (on any database).
    writes: bool,
    /// The plain bearer token.
    token: String,
}

/// Secrets the operator creates, filled from their templates once per run,
/// so that every container mounting one sees the same content.
#[derive(Default)]
struct OperatorSecrets {
    /// Secret name → key → content, from every `*.example.yaml`.
    templates: BTreeMap<String, BTreeMap<String, String>>,
    /// `Secret/NAME key` → the filled content.
    filled: BTreeMap<String, String>,
    /// `sha256:<hex>` → the plain token, for every token generated.
    plain: BTreeMap<String, String>,
    generated: u64,
}

impl OperatorSecrets {
    fn load() -> Result<Self> {
        let mut templates = BTreeMap::new();
        let root = pgmcp_tests::kube::workspace_root().join("deploy/kubernetes");
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(".example.yaml") {
                    let m = Manifests::parse(
                        &path.display().to_string(),
                        &std::fs::read_to_string(&path)?,
                    )?;
                    for secret in m.of_kind("Secret") {
                        let name = secret["metadata"]["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        if let Some(data) = m.secret(&name)? {
                            templates.insert(name, data);
                        }
                    }
                }
            }
        }
        Ok(OperatorSecrets {
            templates,
            ..Default::default()
        })
    }

    /// The shape check of a Secret the manifests expect the operator to create.
    fn has(&self, name: &str, key: &str) -> bool {
        self.templates
            .get(name)
            .is_some_and(|d| d.contains_key(key))
    }

    /// The content of key `key` of Secret `name`: its template with every
    /// placeholder replaced by a fresh token (or that token's digest).
    fn fill(&mut self, name: &str, key: &str) -> Result<String> {
        let origin = format!("Secret/{name} {key}");
        if let Some(content) = self.filled.get(&origin) {
            return Ok(content.clone());
        }
        let template = self
            .templates
            .get(name)
            .and_then(|d| d.get(key))
            .with_context(|| {
                format!(
                    "{origin} is neither rendered nor described by a *.example.yaml template under deploy/kubernetes/"
                )
            })?
            .clone();
        let mut content = String::new();
        for line in template.split_inclusive('\n') {
            let mut line = line.to_string();
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            for word in words.iter().filter(|w| w.contains("REPLACE-WITH")) {
                self.generated += 1;
                let token = hex(&pgmcp_gateway::auth::tokens::digest(
                    format!(
                        "{:?} {} {}",
                        Instant::now(),
                        std::process::id(),
                        self.generated
                    )
                    .as_bytes(),
                ));
                let digest = format!(
                    "sha256:{}",
                    hex(&pgmcp_gateway::auth::tokens::digest(token.as_bytes()))
                );
                let replacement = if word.starts_with("sha256:") {
                    digest.clone()
                } else {
                    token.clone()
                };
                self.plain.insert(digest, token);
                line = line.replacen(word.as_str(), &replacement, 1);
            }
            content.push_str(&line);
        }
        self.filled.insert(origin, content.clone());
        Ok(content)
    }

    /// The clients of a static tokens file (`PRINCIPAL PERMISSIONS TOKEN`
    /// lines) whose plain token is known: written as it is, or generated
    /// here for a digest.
    fn clients(&self, tokens: &str) -> Result<Vec<Client>> {
        use pgmcp_gateway::auth::{Access, Permissions};
        let mut clients = Vec::new();
        for line in tokens.split(['\n', ';']) {
            let fields: Vec<&str> = line
                .split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let [principal, permissions, token] = fields.as_slice() else {
                continue;
            };
            let token = match token.strip_prefix("sha256:") {
                Some(_) => match self.plain.get(*token) {
                    Some(plain) => plain.clone(),
                    None => continue,
                },
                None => token.to_string(),
            };
            let permissions = Permissions::parse(permissions.split(','))
                .map_err(|e| anyhow::anyhow!("the tokens of {principal}: {e}"))?;
            clients.push(Client {
                principal: principal.to_string(),
                writes: permissions.any(Access::Write),
                token,
            });
        }
        Ok(clients)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn runs_as_written(path: &'static str) -> Result<Ran> {
    let m = tokio::task::spawn_blocking(move || Manifests::render(path)).await??;
    let pg = tokio::task::spawn_blocking(Pg::start).await??;
    // The ordinary role `app`: a worker refuses a superuser for read-only targets.
    let database_url = pg.create_db("app").await?;
    pg.exec(
        "app",
        &format!("CREATE TABLE {WRITES_TABLE} (principal text NOT NULL, at timestamptz NOT NULL DEFAULT now())"),
    )
    .await?;

    let containers: Vec<Container<'_>> = m
        .containers()
        .into_iter()
        .filter(|c| c.image().starts_with(IMAGE_REPOSITORY))
        .collect();
    for c in &containers {
        ensure!(
            c.image() == IMAGE,
            "{} runs {}, but the workspace builds {IMAGE}",
            c.workload_id(),
            c.image()
        );
    }

    // Every declared port of every pgmcp container gets a loopback port.
    let mut loopback: BTreeMap<(String, u16), u16> = BTreeMap::new();
    for c in &containers {
        for (_, port) in c.ports() {
            loopback.insert((c.workload_id(), port), free_port()?);
        }
    }

    let mut secrets = OperatorSecrets::load()?;
    let mut plans = Vec::new();
    for c in &containers {
        plans.push(plan(&m, *c, &loopback, &database_url, &mut secrets)?);
    }
    check_telemetry(&m, &containers)?;
    let workers = plans.iter().filter(|p| p.role == Role::Worker).count();
    let gateways = plans.iter().filter(|p| p.role == Role::Gateway).count();
    ensure!(
        workers >= 1 && gateways >= 1,
        "{path}: expected gateways and workers, got {gateways} gateways and {workers} workers"
    );

    // Workers first: a gateway is ready only once a worker answers.
    let mut running = Vec::new();
    for role in [Role::Worker, Role::Gateway] {
        for p in plans.iter().filter(|p| p.role == role) {
            let mut child = spawn(p).await?;
            wait_ready(p, &mut child).await?;
            running.push((p, child));
        }
    }

    let mut tools = BTreeMap::new();
    let mut writes = BTreeMap::new();
    for p in plans.iter().filter(|p| p.role == Role::Gateway) {
        check_hosts(&m, p).await?;
        tools.insert(p.container.workload_id(), check_calls(&m, p).await?);
        writes.insert(p.container.workload_id(), check_writes(&m, p).await?);
    }
    let written = pg
        .column(
            "app",
            &format!("SELECT principal FROM {WRITES_TABLE} ORDER BY at"),
        )
        .await?
        .into_iter()
        .flatten()
        .collect();
    for p in &plans {
        check_metrics(p).await?;
    }

    // SIGTERM, gateways first, as a rollout would.
    running.sort_by_key(|(p, _)| p.role == Role::Worker);
    for (p, child) in &mut running {
        stop(p, child).await?;
    }
    drop(pg);
    Ok(Ran {
        gateways,
        workers,
        tools,
        writes,
        written,
    })
}

/// Resolves a container's command, args, environment and files, and checks
/// the settings that must agree with each other.
fn plan<'a>(
    m: &'a Manifests,
    c: Container<'a>,
    loopback: &BTreeMap<(String, u16), u16>,
    database_url: &str,
    secrets: &mut OperatorSecrets,
) -> Result<Plan<'a>> {
    let id = c.workload_id();
    let command = c.command();
    let args = c.args();
    let role = match command.first().map(String::as_str) {
        Some("pgmcp-worker") => Role::Worker,
        Some("pgmcp-gateway") => Role::Gateway,
        Some("pgmcp") => match command.get(1).or(args.first()).map(String::as_str) {
            Some("worker") => Role::Worker,
            Some("gateway") => Role::Gateway,
            other => bail!("{id}: `pgmcp {other:?}` is neither a worker nor a gateway"),
        },
        _ => bail!(
            "{id} runs the pgmcp image with command {command:?}: set pgmcp-worker or pgmcp-gateway"
        ),
    };
    let program = command[0].clone();
    let dir = tempfile::tempdir()?;
    let ports: BTreeMap<u16, u16> = c
        .ports()
        .into_iter()
        .filter_map(|(_, port)| Some((port, *loopback.get(&(id.clone(), port))?)))
        .collect();

    let env = c.env(m)?;
    let url_file = match env.get("DATABASE_URL_FILE") {
        Some(EnvValue::Literal(path)) => Some(path.clone()),
        Some(other) => bail!("{id}: DATABASE_URL_FILE comes from {other:?}; it should be a path"),
        None => None,
    };
    // Files from Secret and ConfigMap volumes, under a local directory; the
    // database URL file holds the throwaway cluster's URL.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    let mut files = Vec::new();
    let tokens_file = match env.get("PGMCP_AUTH_TOKENS_FILE") {
        Some(EnvValue::Literal(path)) => Some(path.clone()),
        Some(other) => {
            bail!("{id}: PGMCP_AUTH_TOKENS_FILE comes from {other:?}; it should be a path")
        }
        None => None,
    };
    let mut clients = Vec::new();
    for f in c.files(m)? {
        let local = dir.path().join(f.path.trim_start_matches('/'));
        let content = if url_file.as_deref() == Some(f.path.as_str()) {
            // The operator's Secret (not rendered) must have the template's shape.
            if f.content.is_none() {
                let (object, key) = f
                    .origin
                    .strip_prefix("Secret/")
                    .and_then(|o| o.split_once(' '))
                    .context("the database URL file is not from a Secret")?;
                ensure!(
                    secrets.has(object, key),
                    "{id} reads its database URL from {}, but no deploy/kubernetes/**/*.example.yaml \
                     defines that Secret and key",
                    f.origin
                );
            }
            database_url.to_string()
        } else if let Some(content) = &f.content {
            content.clone()
        } else {
            // A Secret the operator creates: filled from its template.
            let (object, key) = f
                .origin
                .strip_prefix("Secret/")
                .and_then(|o| o.split_once(' '))
                .with_context(|| {
                    format!(
                        "{id} mounts {} ({}), which is not rendered",
                        f.path, f.origin
                    )
                })?;
            secrets
                .fill(object, key)
                .with_context(|| format!("{id} mounts {}", f.path))?
        };
        if tokens_file.as_deref() == Some(f.path.as_str()) {
            clients = secrets.clients(&content)?;
        }
        if let Some(parent) = local.parent() {
            mounts.push((
                f.path
                    .rsplit_once('/')
                    .map(|(d, _)| d)
                    .unwrap_or("")
                    .to_string(),
                parent.to_path_buf(),
            ));
        }
        files.push((local, content));
    }
    for (var, path) in [
        ("DATABASE_URL_FILE", &url_file),
        ("PGMCP_AUTH_TOKENS_FILE", &tokens_file),
    ] {
        if let Some(path) = path {
            ensure!(
                c.files(m)?.iter().any(|f| &f.path == path),
                "{id}: {var} is {path}, which no volume provides"
            );
        }
    }
    if let Some(EnvValue::Literal(tokens))
    | Some(EnvValue::Secret {
        value: Some(tokens),
        ..
    }) = env.get("PGMCP_AUTH_TOKENS")
    {
        clients.extend(secrets.clients(tokens)?);
    }
    if let Some(path) = &tokens_file {
        ensure!(
            !clients.is_empty(),
            "{id}: the tokens file {path} holds no token this test can present (only digests of unknown tokens)"
        );
    }
    let mut rewriter = Rewriter {
        m,
        container: c,
        ports: &ports,
        loopback,
        mounts: &mounts,
        used_ports: BTreeSet::new(),
    };
    let mut rewrite = |key: &str, value: &str| -> Result<String> {
        let items: Result<Vec<String>> = value
            .split(',')
            .map(|item| rewriter.item(key, item))
            .collect();
        Ok(items?.join(","))
    };

    let mut resolved_env = BTreeMap::new();
    for (key, value) in &env {
        let value = match value {
            EnvValue::Literal(v) => rewrite(key, v)?,
            EnvValue::Secret { .. } if key == "DATABASE_URL" => database_url.to_string(),
            EnvValue::Secret {
                name,
                key: k,
                value,
            } => {
                let v = value.as_deref().with_context(|| {
                    format!("{id}: {key} comes from Secret {name} key {k}, which is not rendered")
                })?;
                rewrite(key, v)?
            }
            EnvValue::Field(path) => match path.as_str() {
                "metadata.name" => format!("{}-5d8f7c9b4-x2x7q", c.workload_name()),
                "metadata.namespace" => c.namespace().to_string(),
                "status.podIP" => "127.0.0.1".to_string(),
                other => {
                    bail!("{id}: {key} comes from fieldRef {other}, which this test does not know")
                }
            },
        };
        resolved_env.insert(key.clone(), value);
    }
    let mut argv = Vec::new();
    for arg in command[1..].iter().chain(args.iter()) {
        ensure!(
            !arg.contains("$("),
            "{id}: $(VAR) expansion in {arg} is not supported here"
        );
        argv.push(match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                format!("{flag}={}", rewrite(flag, value)?)
            }
            _ => rewrite("", arg)?,
        });
    }
    let used_ports = rewriter.used_ports;
    for (_, port) in c.ports() {
        ensure!(
            used_ports.contains(&port),
            "{id} declares containerPort {port}, but its args and environment listen on {used_ports:?}"
        );
    }

    // The grace period covers the preStop sleep and the longest call.
    let pre_stop = c
        .pre_stop_sleep()
        .with_context(|| format!("{id} has no preStop sleep"))?;
    let limit_var = match role {
        Role::Gateway => "PGMCP_MAX_TIMEOUT_MS",
        Role::Worker => "PGMCP_MAX_STATEMENT_TIMEOUT_MS",
    };
    let max_call_ms: u64 = resolved_env
        .get(limit_var)
        .with_context(|| {
            format!("{id} does not set {limit_var}, which its grace period depends on")
        })?
        .parse()?;
    let grace = c.termination_grace_seconds();
    ensure!(
        grace >= pre_stop + max_call_ms.div_ceil(1000),
        "{id}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + {limit_var} {max_call_ms} ms"
    );

    // After the preStop sleep, SIGTERM: the process must be done draining
    // before the kubelet's SIGKILL. A worker keeps serving for its drain
    // delay, then waits for calls in flight up to its shutdown grace; a
    // gateway waits up to its shutdown grace. Names and defaults are the
    // binaries' own (worker/src/config.rs, gateway/src/config.rs).
    let drain_settings: &[&str] = match role {
        Role::Worker => &["drain_delay_ms", "shutdown_grace_ms"],
        Role::Gateway => &["shutdown_grace_ms"],
    };
    let mut drain_ms = 0u64;
    let mut drain_parts = Vec::new();
    for field in drain_settings {
        let (name, value) = setting(role, field, &argv, &resolved_env)?;
        let ms: u64 = value
            .parse()
            .with_context(|| format!("{id}: {name} is `{value}`, not milliseconds"))?;
        drain_ms += ms;
        drain_parts.push(format!("{name} {ms} ms"));
    }
    let after_pre_stop = grace.saturating_sub(pre_stop);
    ensure!(
        drain_ms <= after_pre_stop * 1000,
        "{id}: {} ({drain_ms} ms in all) is more than the {after_pre_stop} s that \
         terminationGracePeriodSeconds {grace} leaves after the preStop sleep of {pre_stop} s: \
         the kubelet would kill it while it drains",
        drain_parts.join(" + ")
    );

    // Discovery: a gateway's `dns://NAME:PORT` worker entry must name a
    // rendered headless Service (clusterIP: None), whose name resolves to
    // every ready worker; a ClusterIP Service would hide all workers but one
    // behind a single virtual address.
    if role == Role::Gateway {
        let raw_argv: Vec<String> = command[1..].iter().chain(args.iter()).cloned().collect();
        let raw_env: BTreeMap<String, String> = env
            .iter()
            .filter_map(|(k, v)| match v {
                EnvValue::Literal(v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect();
        let (name, workers) = setting(role, "workers", &raw_argv, &raw_env)?;
        for entry in workers.split(',').map(str::trim) {
            let Some(authority) = entry.strip_prefix("dns://") else {
                continue;
            };
            let authority = authority.split('/').next().unwrap_or(authority);
            let (host, port) = authority
                .rsplit_once(':')
                .with_context(|| format!("{id}: {name} entry {entry} has no port"))?;
            let service = m.service(host, c.namespace()).with_context(|| {
                format!("{id}: {name} entry {entry} names no Service of {}", m.path)
            })?;
            ensure!(
                service["spec"]["clusterIP"] == "None",
                "{id}: {name} entry {entry} names Service {}, which is not headless (clusterIP: None): \
                 its DNS name would resolve to one virtual IP instead of every worker",
                service["metadata"]["name"]
            );
            ensure!(
                m.service_target(host, port.parse()?, c.namespace())?
                    .is_some_and(|(_, target, _)| target
                        .command()
                        .first()
                        .is_some_and(|p| p == "pgmcp-worker" || p == "pgmcp")),
                "{id}: {name} entry {entry} does not lead to a worker"
            );
        }
    }

    // Exposure: a gateway on a non-loopback address needs authentication
    // (the binary refuses to start otherwise; said here with the reason).
    if role == Role::Gateway {
        let listen = argv
            .iter()
            .find_map(|a| a.strip_prefix("--listen="))
            .or(resolved_env.get("PGMCP_GATEWAY_LISTEN").map(String::as_str))
            .unwrap_or("127.0.0.1:8080");
        let loopback = listen.starts_with("127.")
            || listen.starts_with("[::1]")
            || listen.starts_with("localhost:");
        let authenticated = env.contains_key("PGMCP_AUTH_TOKENS_FILE")
            || env.contains_key("PGMCP_AUTH_TOKENS")
            || env.contains_key("PGMCP_JWT_ISSUER");
        ensure!(
            loopback || authenticated,
            "{id} listens on {listen} without authentication: give it PGMCP_AUTH_TOKENS_FILE (a Secret) or JWT settings"
        );
    }

    // gateway → worker: both sides hold the worker token.
    if let Some(EnvValue::Literal(path)) = env.get("PGMCP_WORKER_TOKEN_FILE") {
        ensure!(
            c.files(m)?.iter().any(|f| &f.path == path),
            "{id}: PGMCP_WORKER_TOKEN_FILE is {path}, which no volume provides"
        );
    } else {
        bail!("{id} has no PGMCP_WORKER_TOKEN_FILE: workers must serve only the gateways");
    }

    Ok(Plan {
        container: c,
        role,
        program,
        argv,
        env: resolved_env,
        files,
        ports,
        clients,
        log: dir.path().join("output.log"),
        _dir: dir,
    })
}

/// The value of the binary's setting `field` (a field of its clap `Args`) in
/// a container: its `--flag`, else its environment variable, else the
/// binary's default. Returns how it was set (for messages) and the value.
fn setting(
    role: Role,
    field: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
) -> Result<(String, String)> {
    use clap::Args as _;
    let command = match role {
        Role::Worker => pgmcp_worker::Args::augment_args(clap::Command::new("pgmcp-worker")),
        Role::Gateway => pgmcp_gateway::Args::augment_args(clap::Command::new("pgmcp-gateway")),
    };
    let arg = command
        .get_arguments()
        .find(|a| a.get_id() == field)
        .with_context(|| format!("{role:?} has no setting `{field}`"))?;
    if let Some(long) = arg.get_long() {
        let flag = format!("--{long}");
        for (i, a) in argv.iter().enumerate() {
            if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                return Ok((flag, v.to_string()));
            }
            if *a == flag
                && let Some(v) = argv.get(i + 1)
            {
                return Ok((flag, v.clone()));
            }
        }
    }
    let var = arg
        .get_env()
        .and_then(|e| e.to_str())
        .with_context(|| format!("{role:?} setting `{field}` has no environment variable"))?;
    if let Some(v) = env.get(var) {
        return Ok((var.to_string(), v.clone()));
    }
    let default = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join(",");
    ensure!(
        !default.is_empty(),
        "{role:?} setting `{field}` ({var}) is not set and has no default"
    );
    Ok((format!("{var} (unset: the default)"), default))
}

/// Rewrites values of one container's arguments and environment for loopback.
struct Rewriter<'a, 'm> {
    m: &'m Manifests,
    container: Container<'m>,
    /// containerPort → loopback port of this container.
    ports: &'a BTreeMap<u16, u16>,
    /// (workload, containerPort) → loopback port of every pgmcp container.
    loopback: &'a BTreeMap<(String, u16), u16>,
    /// Mount directory in the container → local directory.
    mounts: &'a [(String, PathBuf)],
    /// Container ports something listens on.
    used_ports: BTreeSet<u16>,
}

impl Rewriter<'_, '_> {
    /// One comma-separated item of the value of `key`.
    fn item(&mut self, key: &str, item: &str) -> Result<String> {
        let c = &self.container;
        let id = c.workload_id();
        // A listen address: every interface, as in the pod, on a free port.
        for any in ["0.0.0.0:", "[::]:"] {
            if let Some(port) = item.strip_prefix(any) {
                let port: u16 = port.parse()?;
                let local = self.ports.get(&port).with_context(|| {
                    format!("{id} listens on {item} ({key}), which is not a declared containerPort")
                })?;
                self.used_ports.insert(port);
                return Ok(format!("{any}{local}"));
            }
        }
        // A URL: to a Service of these manifests, or to a telemetry collector.
        if let Some((scheme, rest)) = item.split_once("://") {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if let Some((host, port)) = authority.rsplit_once(':')
                && let Ok(port) = port.parse::<u16>()
            {
                if let Some((_, target, target_port)) =
                    self.m.service_target(host, port, c.namespace())?
                {
                    let local = match self.loopback.get(&(target.workload_id(), target_port)) {
                        Some(local) => *local,
                        // A Service of something this test does not run (Jaeger).
                        None => closed_port()?,
                    };
                    return Ok(format!("{scheme}://127.0.0.1:{local}{path}"));
                }
                if key.starts_with("OTEL_") {
                    return Ok(format!("{scheme}://127.0.0.1:{}{path}", closed_port()?));
                }
            }
            return Ok(item.to_string());
        }
        // A path into a mounted volume.
        for (container_dir, local_dir) in self.mounts {
            if let Some(rest) = item.strip_prefix(container_dir.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return Ok(format!("{}{rest}", local_dir.display()));
            }
        }
        Ok(item.to_string())
    }
}

async fn spawn(p: &Plan<'_>) -> Result<Child> {
    for (path, content) in &p.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content)?;
    }
    let program = p.program.clone();
    let exe = tokio::task::spawn_blocking(move || pgmcp_tests::bins::bin(&program)).await??;
    let log = std::fs::File::create(&p.log)?;
    Command::new(exe)
        .args(&p.argv)
        .env_clear()
        .envs(&p.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} of {}", p.program, p.container.workload_id()))
}

/// Waits until every probe of the container passes.
async fn wait_ready(p: &Plan<'_>, child: &mut Child) -> Result<()> {
    let id = p.container.workload_id();
    let probes = p.container.probes()?;
    ensure!(
        probes.len() == 3,
        "{id} should have startup, liveness and readiness probes, has {probes:?}"
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pending: Vec<(&str, Probe)> = probes;
    loop {
        let mut still = Vec::new();
        let mut last = String::new();
        for (kind, probe) in pending {
            match probe_once(p, &probe).await {
                Ok(()) => {}
                Err(e) => {
                    last = format!("{kind} {probe:?}: {e:#}");
                    still.push((kind, probe));
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let output = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = output.lines().rev().take(5).collect();
            bail!(
                "{id} ({} {:?}) exited with {status} before it was ready; its last words:\n{}",
                p.program,
                p.argv,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!("{id} was not ready within {READY_TIMEOUT:?}: {last}");
        }
        pending = still;
        sleep(Duration::from_millis(100)).await;
    }
}

async fn probe_once(p: &Plan<'_>, probe: &Probe) -> Result<()> {
    match probe {
        Probe::Http { path, port } => {
            let local = local_port(p, *port)?;
            let (status, body) = timeout(
                Duration::from_secs(3),
                pgmcp_tests::gateway::http_get(([127, 0, 0, 1], local).into(), path, "127.0.0.1"),
            )
            .await??;
            ensure!((200..400).contains(&status), "HTTP {status}: {body}");
            Ok(())
        }
        Probe::Grpc { port, service } => {
            use tonic_health::pb::health_check_response::ServingStatus;
            use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
            let local = local_port(p, *port)?;
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{local}"))?
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(2))
                    .connect()
                    .await?;
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.clone(),
                })
                .await?
                .into_inner()
                .status;
            ensure!(
                status == ServingStatus::Serving as i32,
                "grpc.health.v1 `{service}` is {:?}",
                ServingStatus::try_from(status)
            );
            Ok(())
        }
    }
}

fn local_port(p: &Plan<'_>, container_port: u16) -> Result<u16> {
    p.ports.get(&container_port).copied().with_context(|| {
        format!(
            "{} probes port {container_port}, which it does not declare",
            p.container.workload_id()
        )
    })
}

/// The gateway answers MCP for every name it is reached by: its Services'
/// DNS names and the hosts of Ingresses in front of them; other hosts get 403.
async fn check_hosts(m: &Manifests, p: &Plan<'_>) -> Result<()> {
    let id = p.container.workload_id();
    let labels = p.container.pod_labels();
    let mut hosts = Vec::new();
    for svc in m.of_kind("Service") {
        let selector = svc["spec"]["selector"].as_object();
        let selects = selector.is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
        if !selects {
            continue;
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or("");
        let ns = p.container.namespace();
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let service_port = port["port"].as_u64().unwrap_or(0);
            let suffix = if service_port == 80 {
                String::new()
            } else {
                format!(":{service_port}")
            };
            for host in [
                name.to_string(),
                format!("{name}.{ns}"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}.svc.cluster.local"),
            ] {
                hosts.push((format!("{host}{suffix}"), "/mcp".to_string()));
            }
        }
        for ingress in m.of_kind("Ingress") {
            for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
                for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                    if path["backend"]["service"]["name"] == name {
                        let host = rule["host"]
                            .as_str()
                            .context("an Ingress rule has no host")?;
                        let route = path["path"].as_str().unwrap_or("/");
                        hosts.push((host.to_string(), route.to_string()));
                    }
                }
            }
        }
    }
    ensure!(!hosts.is_empty(), "no Service selects {id}");
    let http = gateway_port(p)?;
    let bearer = p.clients.first().map(|c| c.token.as_str());
    for (host, path) in &hosts {
        let (status, body) = mcp_post(http, path, host, bearer, INITIALIZE).await?;
        ensure!(
            status == 200,
            "{id} answered HTTP {status} to MCP at http://{host}{path}: keep PGMCP_ALLOWED_HOSTS in step \
             with its Services and Ingresses ({body})"
        );
    }
    let (status, _) = mcp_post(
        http,
        "/mcp",
        "rebinding.attacker.example",
        bearer,
        INITIALIZE,
    )
    .await?;
    ensure!(
        status == 403,
        "{id} accepted a foreign Host header (HTTP {status})"
    );
    // Without a token: refused. The base manifests always configure
    // authentication; an overlay that turns it off must say so with
    // --insecure-no-auth, and this test then expects the call to pass.
    let insecure = p.argv.iter().any(|a| a == "--insecure-no-auth")
        || p.env
            .get("PGMCP_INSECURE_NO_AUTH")
            .is_some_and(|v| v == "true");
    let (host, path) = &hosts[0];
    let (status, _) = mcp_post(http, path, host, None, INITIALIZE).await?;
    if insecure {
        ensure!(
            status == 200,
            "{id} runs with --insecure-no-auth but answered HTTP {status}"
        );
    } else {
        ensure!(
            status == 401,
            "{id} answered HTTP {status} to a request without a token, expected 401"
        );
    }
    Ok(())
}

/// The gateway's HTTP port on loopback.
fn gateway_port(p: &Plan<'_>) -> Result<u16> {
    let http = p
        .container
        .ports()
        .into_iter()
        .find(|(name, _)| name.as_deref() == Some("http"))
        .map(|(_, port)| port)
        .context("the gateway declares no port named http")?;
    local_port(p, http)
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"deploy-test","version":"0"}}}"#;

/// Each of the gateway's clients lists its tools and calls `list_databases`,
/// which needs a worker: the gateway's worker token is the workers' one.
/// Returns the tools all clients see together.
async fn check_calls(m: &Manifests, p: &Plan<'_>) -> Result<BTreeSet<String>> {
    let id = p.container.workload_id();
    let http = gateway_port(p)?;
    let service = selecting_service(m, p)?;
    let mut clients: Vec<Option<&str>> = p.clients.iter().map(|c| Some(c.token.as_str())).collect();
    if clients.is_empty() {
        clients.push(None);
    }
    let mut tools = BTreeSet::new();
    for bearer in clients {
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
        let listed = mcp_result(http, service, bearer, list)
            .await
            .with_context(|| format!("tools/list on {id}"))?;
        for tool in listed["tools"].as_array().into_iter().flatten() {
            tools.insert(tool["name"].as_str().unwrap_or("").to_string());
        }
        let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_databases","arguments":{}}}"#;
        let result = mcp_result(http, service, bearer, call)
            .await
            .with_context(|| format!("list_databases on {id}"))?;
        ensure!(
            result["isError"] != true
                && result["structuredContent"]["databases"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty()),
            "{id}: list_databases through the worker failed (is the worker token the same on both sides?): {result}"
        );
    }
    Ok(tools)
}

/// Each of the gateway's clients calls `execute` with a harmless INSERT
/// (its principal into the test's table). A client whose token does not
/// grant `write` must be refused, whatever the workers' mode; what became of
/// the others is for the caller to judge (the workers' mode decides it).
async fn check_writes(m: &Manifests, p: &Plan<'_>) -> Result<Vec<(Client, Wrote)>> {
    let id = p.container.workload_id();
    let http = gateway_port(p)?;
    let service = selecting_service(m, p)?;
    let mut out = Vec::new();
    for client in &p.clients {
        let call = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {
                "name": "execute",
                "arguments": {
                    "sql": format!("INSERT INTO {WRITES_TABLE} (principal) VALUES ($1)"),
                    "params": [client.principal],
                },
            },
        })
        .to_string();
        let (status, text) = mcp_post(http, "/mcp", service, Some(&client.token), &call).await?;
        ensure!(
            status == 200,
            "{id}: execute as {} answered HTTP {status}: {text}",
            client.principal
        );
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or(&text)
            .trim();
        let response: serde_json::Value = serde_json::from_str(json)
            .with_context(|| format!("{id}: not a JSON-RPC response: {text}"))?;
        let result = &response["result"];
        let wrote = if !response["error"].is_null() {
            Wrote::Refused {
                kind: "not_served".to_string(),
                message: response["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            }
        } else if result["isError"] == true {
            let error = &result["structuredContent"]["error"];
            Wrote::Refused {
                kind: error["kind"].as_str().unwrap_or("?").to_string(),
                message: error["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| result.to_string()),
            }
        } else {
            Wrote::Rows(
                result["structuredContent"]["rows_affected"]
                    .as_u64()
                    .with_context(|| {
                        format!("{id}: execute returned no rows_affected: {result}")
                    })?,
            )
        };
        if !client.writes {
            ensure!(
                matches!(&wrote, Wrote::Refused { kind, .. } if kind == "permission_denied" || kind == "not_served"),
                "{id}: {} holds no write permission, yet execute gave {wrote:?}",
                client.principal
            );
        }
        out.push((client.clone(), wrote));
    }
    Ok(out)
}

/// The name of a Service that selects the gateway's pods.
fn selecting_service<'m>(m: &'m Manifests, p: &Plan<'_>) -> Result<&'m str> {
    let labels = p.container.pod_labels();
    m.of_kind("Service")
        .find(|svc| {
            svc["spec"]["selector"].as_object().is_some_and(|s| {
                !s.is_empty()
                    && s.iter()
                        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
            })
        })
        .and_then(|svc| svc["metadata"]["name"].as_str())
        .with_context(|| format!("no Service selects {}", p.container.workload_id()))
}

/// One MCP request (stateless, protocol 2025-06-18); its JSON-RPC result.
async fn mcp_result(
    port: u16,
    host: &str,
    bearer: Option<&str>,
    body: &str,
) -> Result<serde_json::Value> {
    let (status, text) = mcp_post(port, "/mcp", host, bearer, body).await?;
    ensure!(status == 200, "HTTP {status}: {text}");
    // A JSON body, or server-sent events whose `data:` carries the response.
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim();
    let response: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("not a JSON-RPC response: {text}"))?;
    ensure!(
        response["error"].is_null(),
        "JSON-RPC error: {}",
        response["error"]
    );
    Ok(response["result"].clone())
}

/// Every pgmcp container is annotated for Prometheus, on a declared port,
/// and serves metrics there.
async fn check_metrics(p: &Plan<'_>) -> Result<()> {
    let id = p.container.workload_id();
    let annotations = &p.container.workload["spec"]["template"]["metadata"]["annotations"];
    ensure!(
        annotations["prometheus.io/scrape"] == "true",
        "{id}: its pods are not annotated prometheus.io/scrape: \"true\""
    );
    let port: u16 = annotations["prometheus.io/port"]
        .as_str()
        .context("no prometheus.io/port annotation")?
        .parse()
        .with_context(|| format!("{id}: prometheus.io/port is not a port number"))?;
    let path = annotations["prometheus.io/path"]
        .as_str()
        .unwrap_or("/metrics");
    let local = local_port(p, port)?;
    let (status, body) = timeout(
        Duration::from_secs(5),
        pgmcp_tests::gateway::http_get(([127, 0, 0, 1], local).into(), path, "127.0.0.1"),
    )
    .await
    .with_context(|| format!("{id}: no answer from its metrics endpoint"))??;
    ensure!(
        status == 200 && body.contains("# TYPE"),
        "{id}: GET {path} on its metrics port {port} answered HTTP {status}: {body:.200}"
    );
    Ok(())
}

/// Dev sends the traces of every pgmcp container to Jaeger, production to
/// its collector: OTLP endpoint and service name set.
fn check_telemetry(m: &Manifests, containers: &[Container<'_>]) -> Result<()> {
    let expects = match m.path.as_str() {
        "overlays/dev" => "jaeger",
        "overlays/production" => "otel-collector",
        _ => return Ok(()),
    };
    for c in containers {
        let id = c.workload_id();
        let env = c.env(m)?;
        let literal = |k: &str| match env.get(k) {
            Some(EnvValue::Literal(v)) => Some(v.clone()),
            _ => None,
        };
        let endpoint = literal("OTEL_EXPORTER_OTLP_ENDPOINT")
            .with_context(|| format!("{}: {id} sets no OTEL_EXPORTER_OTLP_ENDPOINT", m.path))?;
        ensure!(
            endpoint.contains(expects),
            "{}: {id} sends traces to {endpoint}, expected {expects}",
            m.path
        );
        ensure!(
            literal("OTEL_SERVICE_NAME").is_some(),
            "{}: {id} sets no OTEL_SERVICE_NAME",
            m.path
        );
        if expects == "jaeger" {
            let authority = endpoint
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("");
            let (host, port) = authority
                .rsplit_once(':')
                .context("no port in the OTLP endpoint")?;
            ensure!(
                m.service_target(host, port.parse()?, c.namespace())?
                    .is_some(),
                "{}: {id} sends traces to {endpoint}, which names no rendered Service",
                m.path
            );
        }
    }
    Ok(())
}

/// POSTs `body` to the MCP endpoint with the given Host header and bearer
/// token; returns (status, body). HTTP/1.0, so the body is never chunked.
async fn mcp_post(
    port: u16,
    path: &str,
    host: &str,
    bearer: Option<&str>,
    body: &str,
) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}\
         MCP-Protocol-Version: 2025-06-18\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).to_string())
    };
    let text = timeout(Duration::from_secs(10), exchange)
        .await
        .context("no MCP answer within 10 s")??;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    Ok((
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

/// SIGTERM, then the process must exit successfully within the grace period
/// left after its preStop sleep.
async fn stop(p: &Plan<'_>, child: &mut Child) -> Result<()> {
    let id = p.container.workload_id();
    let pid = child.id().context("the process is gone")?;
    kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
    let budget = p
        .container
        .termination_grace_seconds()
        .saturating_sub(p.container.pre_stop_sleep().unwrap_or(0));
    let status: ExitStatus = timeout(Duration::from_secs(budget), child.wait())
        .await
        .with_context(|| format!("{id} did not exit within {budget} s of SIGTERM"))??;
    ensure!(status.success(), "{id} exited with {status} after SIGTERM");
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> Result<u16> {
    free_port()
}

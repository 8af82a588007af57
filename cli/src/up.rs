//! `pgmcp up`: PostgreSQL, workers and gateways on this machine.
//!
//! Without `--database-url` a throwaway PostgreSQL cluster is started with a
//! demo database ([`DEMO_SQL`]); workers and gateways run as child processes
//! of this executable (`pgmcp worker …`, `pgmcp gateway …`), each in its own
//! process group so that a Ctrl-C in the terminal reaches only us and we stop
//! them in order: gateways, then workers, then PostgreSQL.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgmcp::cluster::Cluster;
use pgmcp_worker::config::redact_url;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout, timeout_at};

/// Schema and data of the demo database (see the file's header).
const DEMO_SQL: &str = include_str!("demo.sql");
/// Name of the demo database; also the workers' target name.
const DEMO_DATABASE: &str = "demo";
/// Read-only role created by [`DEMO_SQL`]; the workers connect as this role.
const DEMO_ROLE: &str = "pgmcp_demo";
/// Environment variable carrying our pid to the children, which stop when
/// their parent is no longer this process (see `stop_with_parent` in main.rs).
pub const PARENT_PID_ENV: &str = "PGMCP_UP_PARENT_PID";
/// How long workers and gateways get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `pgmcp up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Serve this existing database (read-only) instead of a throwaway
    /// PostgreSQL with demo data. DATABASE_URL is deliberately not read.
    #[arg(long, env = "PGMCP_UP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Number of gateways (MCP endpoints), on consecutive ports from --port.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub gateways: u16,

    /// Number of workers (each with its own connection pool).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Port of the first gateway's MCP endpoint.
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Address the gateways listen on. A non-loopback address needs
    /// authentication (configured through the gateway's environment, e.g.
    /// PGMCP_AUTH_TOKENS_FILE) or --insecure-no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Let the gateways serve a non-loopback --host without authentication.
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Let the workers connect as a superuser or BYPASSRLS role (with
    /// --database-url); they refuse by default.
    #[arg(long)]
    pub allow_privileged_role: bool,
}

/// Runs `pgmcp up` until SIGINT or SIGTERM, or until a child dies.
pub async fn run(args: UpArgs) -> ExitCode {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgmcp up: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut fleet = Fleet::default();
    let started = tokio::select! {
        r = fleet.start(&args) => r.map(Some),
        sig = signals.recv() => {
            eprintln!("pgmcp up: {sig} received during start-up; stopping");
            Ok(None)
        }
    };
    let code = match started {
        Ok(Some(running)) => match print_connection_info(&running) {
            Ok(()) => fleet.watch(&mut signals).await,
            Err(e) => {
                eprintln!("pgmcp up: {e:#}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp up: {e:#}");
            ExitCode::FAILURE
        }
    };
    fleet.stop().await;
    code
}

/// SIGINT and SIGTERM, watched from the very start so that neither kills us
/// before the children are stopped.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("watching SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("watching SIGTERM")?,
        })
    }

    /// Completes on the next SIGINT or SIGTERM, naming it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Worker,
    Gateway,
}

/// A worker or gateway child process.
struct Proc {
    name: String,
    kind: Kind,
    /// Where to probe it (loopback when it listens on a wildcard address).
    probe: SocketAddr,
    ready: bool,
    child: Child,
}

/// Everything `up` started; [`Fleet::stop`] undoes it.
#[derive(Default)]
struct Fleet {
    /// PostgreSQL while it is starting (so an interrupted start-up still stops it).
    cluster_start: Option<JoinHandle<Result<Cluster>>>,
    cluster: Option<Cluster>,
    workers: Vec<Proc>,
    gateways: Vec<Proc>,
}

/// What is running, for the connection instructions.
struct Running {
    exe: PathBuf,
    data_dir: Option<PathBuf>,
    database: String,
    worker_urls: Vec<String>,
    mcp_urls: Vec<String>,
}

impl Fleet {
    async fn start(&mut self, args: &UpArgs) -> Result<Running> {
        let exe = std::env::current_exe().context("finding the pgmcp executable")?;
        // Fail fast on a busy --port, before the slow part.
        drop(reserve_ports(args)?);

        let (database_url, data_dir, database) = match &args.database_url {
            Some(url) => (
                url.clone(),
                None,
                format!("{} (read-only)", redact_url(url)),
            ),
            None => {
                eprintln!("pgmcp up: starting a throwaway PostgreSQL");
                let task = self
                    .cluster_start
                    .insert(tokio::task::spawn_blocking(Cluster::start));
                let started = task.await;
                self.cluster_start = None;
                let cluster = self.cluster.insert(
                    started
                        .context("starting PostgreSQL")?
                        .context("starting PostgreSQL")?,
                );
                eprintln!("pgmcp up: loading the demo database");
                load_demo(cluster).await?;
                let url = format!(
                    "postgres://{DEMO_ROLE}@127.0.0.1:{}/{DEMO_DATABASE}?sslmode=disable",
                    cluster.port()
                );
                let description = format!(
                    "{DEMO_DATABASE} (read-only) on PostgreSQL at 127.0.0.1:{}: Bean & Leaf, a small coffee and tea \
                     shop. Tables categories, products, customers, orders, order_items; views order_totals, \
                     monthly_revenue",
                    cluster.port()
                );
                (url, cluster.dir().map(Path::to_path_buf), description)
            }
        };

        let (gateway_ports, worker_ports) = reserve_ports(args)?;
        let worker_addrs: Vec<SocketAddr> = worker_ports
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<_>>()
            .context("reading a reserved port")?;
        let gateway_addrs: Vec<SocketAddr> = gateway_ports
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<_>>()
            .context("reading a reserved port")?;
        // Free the ports just before the children bind them.
        drop((gateway_ports, worker_ports));

        let worker_urls: Vec<String> = worker_addrs.iter().map(|a| format!("http://{a}")).collect();
        for (i, addr) in worker_addrs.iter().enumerate() {
            let name = format!("pgmcp-worker-{}", i + 1);
            let mut cmd = Command::new(&exe);
            cmd.arg("worker")
                .arg("--listen")
                .arg(addr.to_string())
                .args(["--name", &name, "--mode", "read-only"])
                // Through the environment so the URL does not show in `ps`.
                .env("DATABASE_URL", &database_url)
                // A stray target list in our environment must not add databases.
                .env_remove("PGMCP_DATABASES")
                .env_remove("PGMCP_DATABASES_FILE")
                .env_remove("DATABASE_URL_FILE");
            if args.allow_privileged_role {
                cmd.arg("--allow-privileged-role");
            }
            let child = spawn(cmd, &name)?;
            self.workers.push(Proc {
                name,
                kind: Kind::Worker,
                probe: *addr,
                ready: false,
                child,
            });
        }

        // One cursor key for all gateways, so any of them continues any page.
        let cursor_secret: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut mcp_urls = Vec::new();
        for (i, addr) in gateway_addrs.iter().enumerate() {
            let name = format!("pgmcp-gateway-{}", i + 1);
            let mut cmd = Command::new(&exe);
            cmd.arg("gateway")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--workers")
                .arg(worker_urls.join(","))
                .env("PGMCP_CURSOR_SECRET", &cursor_secret);
            if let Some(hosts) = allowed_hosts(args.host) {
                cmd.arg("--allowed-hosts").arg(hosts);
            }
            if args.insecure_no_auth {
                cmd.arg("--insecure-no-auth");
            }
            let child = spawn(cmd, &name)?;
            let probe = SocketAddr::new(connectable(args.host), addr.port());
            mcp_urls.push(format!("http://{probe}/mcp"));
            self.gateways.push(Proc {
                name,
                kind: Kind::Gateway,
                probe,
                ready: false,
                child,
            });
        }

        self.wait_ready().await?;
        Ok(Running {
            exe,
            data_dir,
            database,
            worker_urls,
            mcp_urls,
        })
    }

    /// Waits until every worker accepts TCP connections and every gateway's
    /// `/readyz` answers 200; fails early when a child exits.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut waiting = Vec::new();
            for p in self.workers.iter_mut().chain(self.gateways.iter_mut()) {
                // Also those found ready: a worker listens before it has
                // connected to its database, and may still give up.
                if let Some(status) = p
                    .child
                    .try_wait()
                    .with_context(|| format!("checking on {}", p.name))?
                {
                    bail!(
                        "{} exited during start-up ({status}); its log is above",
                        p.name
                    );
                }
                if p.ready {
                    continue;
                }
                let probe = match p.kind {
                    Kind::Worker => tcp_accepts(p.probe).await,
                    Kind::Gateway => http_ok(p.probe, "/readyz").await,
                };
                match probe {
                    Ok(()) => p.ready = true,
                    Err(why) => waiting.push(format!("{} ({why})", p.name)),
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "not ready after {} s: {}",
                    READY_TIMEOUT.as_secs(),
                    waiting.join("; ")
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs until a signal (success) or until a child exits (failure).
    async fn watch(&mut self, signals: &mut Signals) -> ExitCode {
        loop {
            tokio::select! {
                sig = signals.recv() => {
                    eprintln!("pgmcp up: {sig} received; stopping");
                    return ExitCode::SUCCESS;
                }
                () = sleep(Duration::from_millis(200)) => {
                    if let Some((name, what)) = self.exited() {
                        eprintln!("pgmcp up: {name} exited unexpectedly ({what}); stopping the rest");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }

    /// The first child that is no longer running, with how it ended.
    fn exited(&mut self) -> Option<(String, String)> {
        for p in self.gateways.iter_mut().chain(self.workers.iter_mut()) {
            match p.child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => return Some((p.name.clone(), status.to_string())),
                Err(e) => return Some((p.name.clone(), format!("cannot check its status: {e}"))),
            }
        }
        None
    }

    /// Stops gateways, then workers, then PostgreSQL (which deletes its files).
    async fn stop(&mut self) {
        stop_all(&mut self.gateways).await;
        stop_all(&mut self.workers).await;
        if let Some(task) = self.cluster_start.take()
            && let Ok(Ok(cluster)) = task.await
        {
            self.cluster = Some(cluster);
        }
        if let Some(cluster) = self.cluster.take() {
            eprintln!("pgmcp up: stopping PostgreSQL");
            if tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .is_err()
            {
                eprintln!("pgmcp up: stopping PostgreSQL failed");
            }
        }
    }
}

/// Sends SIGTERM to every running child, waits up to [`STOP_TIMEOUT`],
/// then kills what is left.
async fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        if let Ok(None) = p.child.try_wait()
            && let Some(pid) = p.child.id().and_then(|id| i32::try_from(id).ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for p in procs.iter_mut() {
        if timeout_at(deadline, p.child.wait()).await.is_err() {
            eprintln!(
                "pgmcp up: {} did not stop within {} s; killing it",
                p.name,
                STOP_TIMEOUT.as_secs()
            );
            if let Err(e) = p.child.kill().await {
                eprintln!("pgmcp up: killing {}: {e}", p.name);
            }
        }
    }
}

/// Starts a child: stdin and stdout closed, stderr (its log) shared with ours,
/// its own process group, killed if we drop it without stopping it, and
/// stopping by itself should we die.
fn spawn(mut cmd: Command, name: &str) -> Result<Child> {
    cmd.env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {name}"))
}

/// Creates the demo database and loads [`DEMO_SQL`] as the superuser.
async fn load_demo(cluster: &Cluster) -> Result<()> {
    let admin_url = format!("{}?sslmode=disable", cluster.url("postgres"));
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .context("connecting to the throwaway PostgreSQL")?;
    sqlx::raw_sql("CREATE DATABASE demo")
        .execute(&mut admin)
        .await
        .context("creating the demo database")?;
    let _ = admin.close().await;

    let demo_url = format!("{}?sslmode=disable", cluster.url(DEMO_DATABASE));
    let mut demo = PgConnection::connect(&demo_url)
        .await
        .context("connecting to the demo database")?;
    sqlx::raw_sql(DEMO_SQL)
        .execute(&mut demo)
        .await
        .context("loading the demo data")?;
    let _ = demo.close().await;
    Ok(())
}

type Reserved = (Vec<std::net::TcpListener>, Vec<std::net::TcpListener>);

/// Binds the gateways' ports (`--port` onwards) and one free loopback port per
/// worker, so that none of them collide; drop the listeners to free them.
fn reserve_ports(args: &UpArgs) -> Result<Reserved> {
    let mut gateways = Vec::new();
    for i in 0..args.gateways {
        let Some(port) = args.port.checked_add(i) else {
            bail!(
                "--port {} with --gateways {} runs past port 65535",
                args.port,
                args.gateways
            );
        };
        let addr = SocketAddr::new(args.host, port);
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!(
                "cannot listen on {addr} for gateway {}; choose other ports with --port",
                i + 1
            )
        })?;
        gateways.push(listener);
    }
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("finding a free port for a worker")?;
        workers.push(listener);
    }
    Ok((gateways, workers))
}

/// The address to reach a server listening on `host` from this machine.
fn connectable(host: IpAddr) -> IpAddr {
    match host {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// `--allowed-hosts` for the gateways: their loopback defaults plus `host`
/// when it is a specific non-loopback address, unless PGMCP_ALLOWED_HOSTS
/// (which the gateways inherit) says otherwise.
fn allowed_hosts(host: IpAddr) -> Option<String> {
    if host.is_loopback()
        || host.is_unspecified()
        || std::env::var_os("PGMCP_ALLOWED_HOSTS").is_some()
    {
        return None;
    }
    let host = match host {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    Some(format!("localhost,127.0.0.1,::1,{host}"))
}

async fn tcp_accepts(addr: SocketAddr) -> std::result::Result<(), String> {
    match timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr} does not accept connections: {e}")),
        Err(_) => Err(format!("{addr} does not accept connections")),
    }
}

/// `Ok` when `GET http://addr{path}` answers 200.
async fn http_ok(addr: SocketAddr, path: &str) -> std::result::Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = match timeout(Duration::from_secs(3), exchange).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(format!("GET http://{addr}{path}: {e}")),
        Err(_) => return Err(format!("GET http://{addr}{path}: no answer within 3 s")),
    };
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("GET http://{addr}{path} answered {code}")),
        None => Err(format!("GET http://{addr}{path}: not an HTTP answer")),
    }
}

/// Prints where the MCP endpoints are and ready-to-paste client config.
fn print_connection_info(r: &Running) -> Result<()> {
    let Some(url) = r.mcp_urls.first() else {
        bail!("no gateway was started");
    };
    let json =
        |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
    let exe = r.exe.to_string_lossy();
    let workers = r.worker_urls.join(",");

    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(out);
    if let Some(dir) = &r.data_dir {
        let _ = writeln!(out, "PostgreSQL data: {}", dir.display());
    }
    let _ = writeln!(out, "Database: {}", r.database);
    let _ = writeln!(out, "Workers: {}", r.worker_urls.join(", "));
    for u in &r.mcp_urls {
        let _ = writeln!(out, "MCP endpoint: {u}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Claude Code:");
    let _ = writeln!(out, "  claude mcp add --transport http pgmcp {url}");
    let _ = writeln!(out);
    let _ = writeln!(out, "VS Code (.vscode/mcp.json):");
    let _ = writeln!(
        out,
        "{}",
        json(serde_json::json!({"servers": {"pgmcp": {"type": "http", "url": url}}}))
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Cursor (~/.cursor/mcp.json):");
    let _ = writeln!(
        out,
        "{}",
        json(serde_json::json!({"mcpServers": {"pgmcp": {"url": url}}}))
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Claude Desktop (claude_desktop_config.json; it starts its own stdio gateway, which uses the \
         workers above, so it works while this `pgmcp up` runs):"
    );
    let _ = writeln!(
        out,
        "{}",
        json(serde_json::json!({"mcpServers": {"pgmcp": {
            "command": exe,
            "args": ["gateway", "--stdio", "--workers", workers],
        }}}))
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Other clients that take a Streamable HTTP server (e.g. .mcp.json):"
    );
    let _ = writeln!(
        out,
        "{}",
        json(serde_json::json!({"mcpServers": {"pgmcp": {"type": "http", "url": url}}}))
    );
    let _ = writeln!(out);
    if r.data_dir.is_some() {
        let _ = writeln!(
            out,
            "Try asking: \"Which products brought in the most revenue in 2025?\" or \
             \"Which customers signed up but never ordered?\""
        );
    }
    let _ = writeln!(out, "pgmcp is up. Press Ctrl-C to stop.");

    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}

//! A throwaway PostgreSQL cluster built from the local server binaries.
//!
//! Used by `pgmcp up` (when no `--database-url` is given) and by the test kit.
//! The cluster lives in a fresh temporary directory, listens on loopback on a
//! free port, trusts local connections, and is stopped and deleted when the
//! [`Cluster`] is dropped. PostgreSQL refuses to run as root, so when we are
//! root the server runs as the `postgres` user.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User, chown};

/// Name of the database superuser of a throwaway cluster.
pub const SUPERUSER: &str = "postgres";

/// How to install the server binaries, for error messages.
const INSTALL_HINT: &str = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`, \
     macOS: `brew install postgresql`) or pass --database-url to use an existing database";

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    port: u16,
    server: Child,
    bin: PathBuf,
    extra_args: Vec<String>,
}

impl Cluster {
    /// Creates and starts a cluster; returns once it accepts connections.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// As [`Cluster::start`], with extra `postgres` arguments appended to
    /// the usual ones, e.g. `["-c", "shared_preload_libraries=pg_stat_statements"]`.
    pub fn start_with(extra_args: &[&str]) -> Result<Self> {
        let bin = find_bindir()?;
        let run_as = run_as_user()?;
        let dir = tempfile::Builder::new()
            .prefix("pgmcp-pg-")
            .tempdir()
            .context("creating a temporary directory for PostgreSQL")?;
        let data = dir.path().join("data");
        if let Some(user) = &run_as {
            chown(dir.path(), Some(user.uid), Some(user.gid))
                .context("handing the temporary directory to the postgres user")?;
        }

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .arg("--no-sync")
            .stdin(Stdio::null());
        as_user(&mut initdb, run_as.as_ref());
        let out = initdb
            .output()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            match start_server(&bin, &data, dir.path(), port, run_as.as_ref(), extra_args) {
                Ok(server) => {
                    return Ok(Cluster {
                        dir: Some(dir),
                        port,
                        server,
                        bin,
                        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    /// TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Directory holding the cluster's files.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Stops the server (fast shutdown) and deletes the cluster's files.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Stops the server (fast shutdown: sessions are ended) and keeps its
    /// files, for [`Cluster::resume`].
    pub fn pause(&mut self) {
        self.stop_server();
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&mut self) -> Result<()> {
        let dir = self.dir.as_ref().context("the cluster was deleted")?.path();
        let run_as = run_as_user()?;
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        self.server = start_server(
            &self.bin,
            &dir.join("data"),
            dir,
            self.port,
            run_as.as_ref(),
            &extra,
        )?;
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }

    fn stop_server(&mut self) {
        if let Ok(None) = self.server.try_wait() {
            let pid = Pid::from_raw(self.server.id() as i32);
            // SIGINT is PostgreSQL's "fast shutdown": abort transactions, exit.
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.server.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.server.kill();
            let _ = self.server.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn start_server(
    bin: &Path,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    run_as: Option<&User>,
    extra_args: &[&str],
) -> Result<Child> {
    let log = socket_dir.join(format!("postgres-{port}.log"));
    let log_file = std::fs::File::create(&log).context("creating the PostgreSQL log file")?;
    if let Some(user) = run_as {
        chown(&log, Some(user.uid), Some(user.gid)).context("handing the log to postgres")?;
    }
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(socket_dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
        ])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        // Its own process group: a Ctrl-C in the terminal must not reach the
        // server directly (SIGINT is its fast shutdown) while `pgmcp up` still
        // has workers using it; our owner stops it in order instead.
        .process_group(0);
    as_user(&mut cmd, run_as);
    let mut child = cmd.spawn().context("starting postgres")?;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            bail!("postgres exited during start-up ({status}):\n{text}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && is_ready(&log) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "postgres did not accept connections within 30 s (log: {})",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The server logs this line once it accepts connections.
fn is_ready(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .map(|t| t.contains("database system is ready to accept connections"))
        .unwrap_or(false)
}

fn as_user(cmd: &mut Command, user: Option<&User>) {
    if let Some(user) = user {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        cmd.env("HOME", &user.dir).env("USER", &user.name);
    }
}

/// The OS user to run PostgreSQL as: `postgres` when we are root, else ourselves.
fn run_as_user() -> Result<Option<User>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres").context("looking up the postgres user")? {
        Some(user) => Ok(Some(user)),
        None => bail!(
            "PostgreSQL refuses to run as root and there is no `postgres` user; \
             create one (`useradd --system postgres`) or run as a normal user"
        ),
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds the directory holding `initdb` and `postgres`: `PGMCP_PG_BINDIR`,
/// then `PATH`, then `pg_config --bindir`, then Debian's versioned layout
/// (`/usr/lib/postgresql/<version>/bin`, newest first).
pub fn find_bindir() -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("PGMCP_PG_BINDIR") {
        candidates.push(dir.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    for root in [
        "/usr/lib/postgresql",
        "/usr/local/pgsql",
        "/opt/homebrew/opt",
    ] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        versions.sort_by_key(|p| {
            std::cmp::Reverse(
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.trim_start_matches("postgresql@").parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        candidates.extend(versions.into_iter().map(|v| v.join("bin")));
        candidates.push(PathBuf::from(root).join("bin"));
    }
    candidates
        .into_iter()
        .find(|d| has_server(d))
        .with_context(|| {
            format!("no PostgreSQL server binaries (initdb, postgres) found; {INSTALL_HINT}")
        })
}

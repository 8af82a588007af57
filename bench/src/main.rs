//! `pgmcp-bench`: measures pgmcp on this machine.
//!
//! Starts a throwaway PostgreSQL with a table of `--rows` rows, a worker and
//! a gateway (the real binaries, as separate processes), then drives them
//! with a closed-loop load client and writes `report.json` and `report.md`
//! to `--out`. See docs/performance.md.

mod bins;
mod clients;
mod cpu;
mod http;
mod load;
mod pgbench;
mod procs;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use pgmcp::cluster::Cluster;
use sqlx::{Connection, PgConnection};

use crate::clients::{
    GrpcCaller, GrpcHealthCaller, HealthzCaller, McpCaller, ROWS_1000, SELECT_1, Sql, SqlxCaller,
    SqlxTxCaller,
};
use crate::cpu::{CpuMeter, CpuPerCall};
use crate::load::Plan;
use crate::procs::{Proc, RssSampler};
use crate::report::{
    BigGrpc, BigMcp, BigQuery, Hop, LoadCase, MemoryReport, Meta, ProcMemory, Ready, Report,
};

/// Benchmark pgmcp: latency and throughput of `tools/call query` against
/// direct sqlx and the worker's gRPC, memory, and start-up time.
#[derive(Parser)]
#[command(name = "pgmcp-bench", version)]
struct Cli {
    /// A few calls per case instead of timed runs: checks that the harness
    /// works, measures nothing meaningful.
    #[arg(long)]
    smoke: bool,

    /// Directory for report.json, report.md and the processes' logs
    /// [default: bench/ in cargo's target directory].
    #[arg(long)]
    out: Option<PathBuf>,

    /// Seconds each load case is measured for, after a warm-up of a fifth
    /// of that.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Rows of the table read by the big query.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,

    /// Spawn-to-ready samples per process.
    #[arg(long, default_value_t = 5)]
    ready_samples: usize,

    /// Take pgmcp-worker and pgmcp-gateway from this directory instead of
    /// building them.
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// Threads of the gateway (its --threads); 0 leaves its default of one
    /// per CPU. One, as docs/scaling.md advises where the gateway shares a
    /// few cores with workers and PostgreSQL, as it does here.
    #[arg(long, default_value_t = 1)]
    gateway_threads: u16,

    /// Only these paths of the load cases (for profiling one of them).
    #[arg(long, value_delimiter = ',', default_values = PATHS)]
    paths: Vec<String>,

    /// Skip the pgbench cases (PostgreSQL on its own).
    #[arg(long)]
    no_pgbench: bool,

    /// Reach PostgreSQL over TCP on 127.0.0.1 (every path: sqlx, the
    /// worker, pgbench) instead of its Unix-domain socket, pgbench's and
    /// libpq's default for a server on the same machine.
    #[arg(long)]
    pg_tcp: bool,
}

/// Paths of the load cases, in the order they run: PostgreSQL directly,
/// PostgreSQL inside the worker's statements, the worker, the whole path.
const PATHS: [&str; 4] = ["sqlx", "sqlx-tx", "grpc", "mcp"];
/// Concurrency levels of every load case.
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Largest page the gateway serves by default (`--max-rows`).
const GATEWAY_MAX_PAGE: u64 = 10_000;
/// The worker's own caps (`--max-rows`, `--max-bytes` defaults).
const WORKER_MAX_ROWS: u64 = 100_000;
const WORKER_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Database and role the worker uses.
const DATABASE: &str = "bench";
const ROLE: &str = "bench_reader";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    anyhow::ensure!(
        cli.rows >= ROWS_1000.rows,
        "--rows must be at least {} (the 1,000-row case reads that many)",
        ROWS_1000.rows
    );
    let started = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = match &cli.out {
        Some(dir) => dir.clone(),
        None => bins::profile_dir()?
            .parent()
            .context("cannot locate the cargo target directory")?
            .join("bench"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let bins = tokio::task::spawn_blocking({
        let dir = cli.bin_dir.clone();
        move || bins::locate(dir.as_deref())
    })
    .await??;

    eprintln!("pgmcp-bench: starting PostgreSQL");
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await?
        .context("starting PostgreSQL")?;
    let result = bench(&cli, &bins, &cluster, &out).await;
    tokio::task::spawn_blocking(move || cluster.stop()).await?;
    let mut report = result?;
    report.meta.started_at = started_at;
    report.meta.duration_s = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    report.check_targets();

    let json = serde_json::to_string_pretty(&report)?;
    let md = report.markdown();
    std::fs::write(out.join("report.json"), json + "\n")?;
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!(
        "pgmcp-bench: wrote {} and report.md",
        out.join("report.json").display()
    );
    Ok(())
}

async fn bench(cli: &Cli, bins: &bins::Bins, cluster: &Cluster, out: &Path) -> Result<Report> {
    let admin_url = format!("{}?sslmode=disable", cluster.url("postgres"));
    let postgres = load_data(&admin_url, cluster, cli.rows).await?;
    let url = pg_url(cluster, cli.pg_tcp)?;
    let worker_log = out.join("worker.log");
    let gateway_log = out.join("gateway.log");
    for log in [&worker_log, &gateway_log] {
        std::fs::write(log, "")?;
    }

    eprintln!("pgmcp-bench: starting a worker and a gateway");
    let (worker_bin, gateway_bin) = (bins.worker(), bins.gateway());
    let start_worker = || Proc::worker(&worker_bin, &url, &worker_log);
    let worker = start_worker().await?;
    let start_gateway =
        || Proc::gateway(&gateway_bin, worker.addr, cli.gateway_threads, &gateway_log);
    let gateway = start_gateway().await?;
    tokio::time::sleep(if cli.smoke {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    })
    .await;
    let idle = (gateway.memory()?, worker.memory()?);

    eprintln!("pgmcp-bench: spawn-to-ready samples");
    let samples = if cli.smoke {
        1
    } else {
        cli.ready_samples.max(1)
    };
    let mut ready = Ready {
        worker_ms: vec![worker.ready_after.as_secs_f64() * 1e3],
        gateway_ms: vec![gateway.ready_after.as_secs_f64() * 1e3],
    };
    for _ in 1..samples {
        let w = start_worker().await?;
        ready.worker_ms.push(w.ready_after.as_secs_f64() * 1e3);
        w.stop().await?;
        let g = start_gateway().await?;
        ready.gateway_ms.push(g.ready_after.as_secs_f64() * 1e3);
        g.stop().await?;
    }
    for v in [&mut ready.worker_ms, &mut ready.gateway_ms] {
        for x in v.iter_mut() {
            *x = (*x * 10.0).round() / 10.0;
        }
    }

    eprintln!("pgmcp-bench: the {}-row query", cli.rows);
    let big_query = big_query(cli.rows, &gateway, &worker).await?;

    let plan = if cli.smoke {
        Plan::Calls(3)
    } else {
        let measure = Duration::from_secs_f64(cli.seconds.max(0.1));
        Plan::Timed {
            warmup: measure / 5,
            measure,
        }
    };
    let data_dir = cluster
        .dir()
        .context("the cluster has no directory")?
        .join("data");
    let rig = Rig {
        url: &url,
        worker: worker.addr,
        gateway: gateway.addr,
        meter: CpuMeter::new(gateway.pid, worker.pid, &data_dir)?,
    };
    let sampler = RssSampler::start(&[gateway.pid, worker.pid]);
    let mut cases = Vec::new();
    for sql in [SELECT_1, ROWS_1000] {
        for concurrency in CONCURRENCY {
            for path in PATHS {
                if !cli.paths.iter().any(|p| p == path) {
                    continue;
                }
                eprintln!(
                    "pgmcp-bench: {} via {path}, concurrency {concurrency}",
                    sql.case
                );
                let (stats, cpu) = load_case(path, sql, concurrency, plan, &rig)
                    .await
                    .with_context(|| {
                        format!("{} via {path} at concurrency {concurrency}", sql.case)
                    })?;
                cases.push(LoadCase {
                    case: sql.case.to_string(),
                    path: path.to_string(),
                    concurrency,
                    stats,
                    cpu,
                });
            }
        }
    }
    eprintln!("pgmcp-bench: the hops without SQL, concurrency 1");
    let hops = vec![
        Hop {
            hop: "http".into(),
            what: "GET /healthz on the gateway".into(),
            stats: load::run(1, plan, || HealthzCaller::connect(gateway.addr)).await?,
        },
        Hop {
            hop: "grpc".into(),
            what: "grpc.health.v1 Check on the worker".into(),
            stats: load::run(1, plan, || GrpcHealthCaller::connect(worker.addr)).await?,
        },
    ];
    let pgbench_bin = pgmcp::cluster::find_bindir()
        .ok()
        .and_then(|dir| pgbench::find(&dir));
    let pgbench = match pgbench_bin {
        Some(bin) if !cli.no_pgbench => {
            pgbench::run(
                &rig.meter,
                &bin,
                &url,
                out,
                &CONCURRENCY,
                plan,
                clients::TIMEOUT_MS,
            )
            .await?
        }
        None if !cli.no_pgbench => {
            eprintln!("pgmcp-bench: no pgbench beside the PostgreSQL server binaries; skipping it");
            Vec::new()
        }
        _ => Vec::new(),
    };
    let peaks = sampler.finish().await;
    let after = (gateway.memory()?, worker.memory()?);
    gateway.stop().await?;
    worker.stop().await?;

    Ok(Report {
        meta: machine(
            cli,
            bins,
            postgres,
            match plan {
                Plan::Calls(n) => format!("{n} calls per connection (smoke)"),
                Plan::Timed { warmup, measure } => format!(
                    "{:.1} s measured after {:.1} s of warm-up",
                    measure.as_secs_f64(),
                    warmup.as_secs_f64()
                ),
            },
        ),
        load: cases,
        memory: MemoryReport {
            gateway: ProcMemory {
                idle_kib: idle.0.rss_kib,
                under_load_kib: peaks.first().copied().unwrap_or(0),
                after_load_kib: after.0.rss_kib,
            },
            worker: ProcMemory {
                idle_kib: idle.1.rss_kib,
                under_load_kib: peaks.get(1).copied().unwrap_or(0),
                after_load_kib: after.1.rss_kib,
            },
        },
        ready,
        big_query,
        hops,
        pgbench,
        targets: Vec::new(),
    })
}

/// The URL every path reaches PostgreSQL by, as [`ROLE`]: over the
/// cluster's Unix-domain socket, or over TCP with `tcp`.
fn pg_url(cluster: &Cluster, tcp: bool) -> Result<String> {
    let port = cluster.port();
    if tcp {
        return Ok(format!(
            "postgres://{ROLE}@127.0.0.1:{port}/{DATABASE}?sslmode=disable"
        ));
    }
    let dir = cluster
        .dir()
        .context("the cluster has no directory for its socket")?
        .display()
        .to_string();
    // Spliced into a URL's query as is: a temporary directory's name.
    if !dir
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        anyhow::bail!("the cluster's socket directory {dir} needs quoting in a URL; use --pg-tcp");
    }
    Ok(format!(
        "postgres://{ROLE}@localhost:{port}/{DATABASE}?sslmode=disable&host={dir}"
    ))
}

/// Creates the database, its read-only role and the table; PostgreSQL's
/// version.
async fn load_data(admin_url: &str, cluster: &Cluster, rows: u64) -> Result<String> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    // One statement each: CREATE DATABASE cannot run in a transaction block.
    for statement in [
        format!("CREATE DATABASE {DATABASE}"),
        format!("CREATE ROLE {ROLE} LOGIN"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .context("creating the database")?;
    }
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let _ = admin.close().await;

    eprintln!("pgmcp-bench: loading {rows} rows");
    let mut db =
        PgConnection::connect(&format!("{}?sslmode=disable", cluster.url(DATABASE))).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{} GRANT SELECT ON bench_rows TO {ROLE};",
        clients::table_sql(rows)
    )))
    .execute(&mut db)
    .await
    .context("loading the table")?;
    let _ = db.close().await;
    Ok(version)
}

/// What the load cases run against.
struct Rig<'a> {
    /// PostgreSQL, for the direct paths.
    url: &'a str,
    worker: SocketAddr,
    gateway: SocketAddr,
    meter: CpuMeter,
}

async fn load_case(
    path: &str,
    sql: Sql,
    concurrency: usize,
    plan: Plan,
    rig: &Rig<'_>,
) -> Result<(load::Stats, CpuPerCall)> {
    let (url, w, g) = (rig.url, rig.worker, rig.gateway);
    let (c, m) = (concurrency, &rig.meter);
    match path {
        "sqlx" => load::run_metered(c, plan, m, || SqlxCaller::connect(url, sql)).await,
        "sqlx-tx" => load::run_metered(c, plan, m, || SqlxTxCaller::connect(url, sql)).await,
        "grpc" => load::run_metered(c, plan, m, || GrpcCaller::connect(w, sql)).await,
        _ => load::run_metered(c, plan, m, || McpCaller::connect(g, sql)).await,
    }
}

/// Reads the whole table through the gateway (in pages of its largest size)
/// and from the worker directly (one stream, the worker's own caps),
/// measuring how far each process's RSS rises above where it was.
async fn big_query(rows: u64, gateway: &Proc, worker: &Proc) -> Result<BigQuery> {
    gateway.reset_peak()?;
    worker.reset_peak()?;
    let before = (gateway.memory()?.rss_kib, worker.memory()?.rss_kib);
    let t = Instant::now();
    let (got, pages) = clients::mcp_all_pages(gateway.addr, GATEWAY_MAX_PAGE).await?;
    let mcp_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(got == rows, "the gateway returned {got} of {rows} rows");
    let after = (gateway.memory()?.hwm_kib, worker.memory()?.hwm_kib);
    let mcp = BigMcp {
        rows: got,
        pages,
        page_size: GATEWAY_MAX_PAGE,
        elapsed_ms: mcp_ms.round(),
        gateway_growth_kib: after.0.saturating_sub(before.0),
        worker_growth_kib: after.1.saturating_sub(before.1),
    };

    worker.reset_peak()?;
    let before = worker.memory()?.rss_kib;
    let mut client = clients::worker_client(worker.addr).await?;
    let t = Instant::now();
    let req = clients::query_request(clients::BIG_SQL, WORKER_MAX_ROWS, WORKER_MAX_BYTES);
    let got = clients::grpc_query(&mut client, req).await?;
    let grpc_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        got == rows.min(WORKER_MAX_ROWS),
        "the worker returned {got} of {rows} rows"
    );
    let grpc = BigGrpc {
        rows: got,
        elapsed_ms: grpc_ms.round(),
        worker_growth_kib: worker.memory()?.hwm_kib.saturating_sub(before),
    };
    Ok(BigQuery {
        table_rows: rows,
        mcp,
        grpc,
    })
}

fn machine(cli: &Cli, bins: &bins::Bins, postgres: String, measure: String) -> Meta {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    Meta {
        smoke: cli.smoke,
        profile: bins.profile.clone(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model,
        memory_mib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        postgres,
        started_at: 0,
        duration_s: 0.0,
        measure,
        gateway_threads: match cli.gateway_threads {
            0 => "one per CPU".into(),
            n => n.to_string(),
        },
        pg_transport: if cli.pg_tcp {
            "TCP on 127.0.0.1"
        } else {
            "its Unix-domain socket"
        }
        .into(),
    }
}

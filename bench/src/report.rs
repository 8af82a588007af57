//! What a run found: a JSON document and a markdown rendering of it, with
//! the targets of issue 8 checked against the figures of the same run.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cpu::CpuPerCall;
use crate::load::Stats;
use crate::pgbench::PgbenchCase;

/// The throughput target for `SELECT 1` through MCP at c=32.
const TARGET_CALLS_PER_S: f64 = 22_000.0;

#[derive(Debug, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub load: Vec<LoadCase>,
    pub memory: MemoryReport,
    pub ready: Ready,
    pub big_query: BigQuery,
    /// Round trips without SQL at concurrency 1, to split a call's latency.
    pub hops: Vec<Hop>,
    /// PostgreSQL on its own, driven by pgbench (empty when pgbench is not
    /// installed beside the server).
    pub pgbench: Vec<PgbenchCase>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Meta {
    pub smoke: bool,
    /// Cargo profile of the binaries measured.
    pub profile: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    pub postgres: String,
    /// Unix time the run started.
    pub started_at: u64,
    pub duration_s: f64,
    /// Seconds each load case was measured for (after its warm-up), or the
    /// calls per connection in smoke mode.
    pub measure: String,
    /// The gateway's `--threads`.
    pub gateway_threads: String,
    /// How every path reaches PostgreSQL: its Unix-domain socket, or TCP.
    pub pg_transport: String,
}

#[derive(Debug, Serialize)]
pub struct LoadCase {
    /// `SELECT 1` or `1,000 rows`.
    pub case: String,
    /// `sqlx` (PostgreSQL directly), `sqlx-tx` (PostgreSQL directly, inside
    /// the statements the worker wraps a read in), `grpc` (worker directly)
    /// or `mcp` (gateway and worker).
    pub path: String,
    pub concurrency: usize,
    #[serde(flatten)]
    pub stats: Stats,
    /// CPU time per call of each process during the measured window.
    pub cpu: CpuPerCall,
}

#[derive(Debug, Serialize)]
pub struct MemoryReport {
    pub gateway: ProcMemory,
    pub worker: ProcMemory,
}

/// KiB.
#[derive(Debug, Default, Serialize)]
pub struct ProcMemory {
    /// RSS once ready, before any call.
    pub idle_kib: u64,
    /// Largest RSS sampled (every 20 ms) while the load cases ran.
    pub under_load_kib: u64,
    /// RSS after the load cases.
    pub after_load_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct Ready {
    /// Spawn → grpc.health SERVING, per sample.
    pub worker_ms: Vec<f64>,
    /// Spawn → `/readyz` 200, per sample (its worker already running).
    pub gateway_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct BigQuery {
    pub table_rows: u64,
    /// The whole table through the gateway, in pages of its largest size.
    pub mcp: BigMcp,
    /// The whole table from the worker in one stream, under its own caps.
    pub grpc: BigGrpc,
}

#[derive(Debug, Serialize)]
pub struct BigMcp {
    pub rows: u64,
    pub pages: u64,
    pub page_size: u64,
    pub elapsed_ms: f64,
    /// Peak RSS (VmHWM) during the query minus RSS before it.
    pub gateway_growth_kib: u64,
    pub worker_growth_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct BigGrpc {
    pub rows: u64,
    pub elapsed_ms: f64,
    pub worker_growth_kib: u64,
}

/// One hop on its own: `http` (into the gateway) or `grpc` (into the
/// worker).
#[derive(Debug, Serialize)]
pub struct Hop {
    pub hop: String,
    pub what: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub value: String,
    pub met: bool,
}

impl Report {
    fn find(&self, case: &str, path: &str, concurrency: usize) -> Option<&Stats> {
        self.find_case(case, path, concurrency).map(|l| &l.stats)
    }

    fn find_case(&self, case: &str, path: &str, concurrency: usize) -> Option<&LoadCase> {
        self.load
            .iter()
            .find(|l| l.case == case && l.path == path && l.concurrency == concurrency)
    }

    /// `SELECT 1` at c=1 split into the hops and what each process adds
    /// (p50s): the worker's path is the gRPC hop and two round trips to
    /// PostgreSQL (BEGIN, the statement); the gateway's adds the HTTP hop.
    fn split(&self) -> Option<String> {
        let s1 = crate::clients::SELECT_1.case;
        let hop = |name: &str| {
            self.hops
                .iter()
                .find(|h| h.hop == name)
                .map(|h| h.stats.p50_us)
        };
        let (http, grpc_hop) = (hop("http")?, hop("grpc")?);
        let pg = self.find(s1, "sqlx", 1)?.p50_us;
        let grpc = self.find(s1, "grpc", 1)?.p50_us;
        let mcp = self.find(s1, "mcp", 1)?.p50_us;
        Some(format!(
            "`SELECT 1` at c=1, p50: through the worker {grpc:.0} µs = gRPC hop {grpc_hop:.0} + \
             2 × PostgreSQL round trip {:.0} + {:.0} µs in the worker; through MCP {mcp:.0} µs = \
             that + HTTP hop {http:.0} + {:.0} µs in the gateway.",
            2.0 * pg,
            grpc - grpc_hop - 2.0 * pg,
            mcp - grpc - http
        ))
    }

    /// What bounds `SELECT 1` at c=32 before any gateway or worker code:
    /// PostgreSQL serving the worker's three round trips per call, to sqlx
    /// and to pgbench, and the same statements pipelined into one.
    fn ceiling(&self) -> Option<String> {
        let s1 = crate::clients::SELECT_1.case;
        let sqlx_tx = self.find_case(s1, "sqlx-tx", 32)?;
        let tx = sqlx_tx.stats.calls_per_s;
        let case = |script: &str| {
            self.pgbench
                .iter()
                .find(|p| p.script == script && p.concurrency == 32)
        };
        let pgbench = |script: &str| case(script).map(|p| p.calls_per_s);
        let mut text = format!(
            "`SELECT 1` at c=32 with no gateway or worker: PostgreSQL serves the worker's three \
             round trips per call at {tx:.0} calls/s to sqlx (`sqlx-tx`)"
        );
        if let Some(messages) = pgbench("messages") {
            let _ = write!(text, " and at {messages:.0} to pgbench");
        }
        if let (Some(p), Some(one)) = (pgbench("pipelined"), pgbench("select1")) {
            let _ = write!(
                text,
                "; the same statements pipelined into one round trip (pgbench) at {p:.0} calls/s, \
                 where pgbench's `SELECT 1` makes {one:.0}"
            );
        }
        if let (Some(p), Some(one)) = (case("pipelined"), case("select1")) {
            let _ = write!(
                text,
                ". PostgreSQL's CPU per call: {:.0} µs on the worker's statements in `sqlx-tx`, \
                 {:.0} µs on the same statements pipelined, {:.0} µs on `SELECT 1` alone",
                sqlx_tx.cpu.postgres_us, p.cpu.postgres_us, one.cpu.postgres_us
            );
        }
        text.push('.');
        Some(text)
    }

    /// What the prepared statements a session keeps cost every call (the
    /// check at BEGIN reads them all), at c=8, where the CPUs are busy.
    fn kept(&self) -> Option<String> {
        let cpu = |script: &str| {
            self.pgbench
                .iter()
                .find(|p| p.script == script && p.concurrency == 8)
                .map(|p| p.cpu.postgres_us)
        };
        let [few, many] = crate::pgbench::KEPT;
        Some(format!(
            "The worker's messages at c=8 cost PostgreSQL {:.0} µs of CPU per call on a session holding no \
             other prepared statement, {:.0} µs on one holding {few} (the worker's statement cache, full) \
             and {:.0} µs on one holding {many} (sqlx's).",
            cpu("messages")?,
            cpu("kept-few")?,
            cpu("kept-many")?
        ))
    }

    /// `SELECT 1` through MCP at c=32 in CPU time: what each process spends
    /// per call, against what the throughput target leaves per call on this
    /// machine's CPUs.
    fn cpu_budget(&self) -> Option<String> {
        let s1 = crate::clients::SELECT_1.case;
        let l = self.find_case(s1, "mcp", 32)?;
        let c = &l.cpu;
        let budget = self.meta.cpus as f64 * 1e6 / TARGET_CALLS_PER_S;
        Some(format!(
            "`SELECT 1` through MCP at c=32 costs {:.0} µs of CPU per call (gateway {:.0}, worker {:.0}, \
             PostgreSQL {:.0}, load client {:.0}), with the machine {:.0}% busy: its {} CPUs allow at most \
             {:.0} such calls/s. The target of {TARGET_CALLS_PER_S:.0} calls/s leaves {budget:.0} µs per call \
             for all four.",
            c.total_us,
            c.gateway_us,
            c.worker_us,
            c.postgres_us,
            c.client_us,
            c.machine_busy_pct,
            self.meta.cpus,
            c.cpu_bound_calls_per_s
        ))
    }

    /// Checks the targets against this run's figures.
    pub fn check_targets(&mut self) {
        let mut t = Vec::new();
        let s1 = crate::clients::SELECT_1.case;
        if let (Some(mcp), Some(sqlx)) = (self.find(s1, "mcp", 1), self.find(s1, "sqlx", 1)) {
            let over = mcp.p50_us - sqlx.p50_us;
            t.push(Target {
                name: "SELECT 1 p50 at c=1, MCP over direct sqlx".into(),
                goal: "≤ 100 µs".into(),
                value: format!("{over:.0} µs ({:.0} vs {:.0})", mcp.p50_us, sqlx.p50_us),
                met: over <= 100.0,
            });
        }
        if let (Some(mcp), Some(sqlx)) = (self.find(s1, "mcp", 32), self.find(s1, "sqlx", 32)) {
            t.push(Target {
                name: "SELECT 1 calls/s at c=32 through MCP".into(),
                goal: "≥ 22,000".into(),
                value: format!("{:.0}", mcp.calls_per_s),
                met: mcp.calls_per_s >= TARGET_CALLS_PER_S,
            });
            let share = if sqlx.calls_per_s > 0.0 {
                100.0 * mcp.calls_per_s / sqlx.calls_per_s
            } else {
                0.0
            };
            t.push(Target {
                name: "SELECT 1 at c=32, MCP share of direct sqlx throughput".into(),
                goal: "≥ 20%".into(),
                value: format!("{share:.0}%"),
                met: share >= 20.0,
            });
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        t.push(Target {
            name: "idle RSS, gateway".into(),
            goal: "< 20 MiB".into(),
            value: format!("{:.1} MiB", mib(self.memory.gateway.idle_kib)),
            met: mib(self.memory.gateway.idle_kib) < 20.0,
        });
        t.push(Target {
            name: "idle RSS, worker".into(),
            goal: "< 30 MiB".into(),
            value: format!("{:.1} MiB", mib(self.memory.worker.idle_kib)),
            met: mib(self.memory.worker.idle_kib) < 30.0,
        });
        for (name, samples) in [
            ("worker", &self.ready.worker_ms),
            ("gateway", &self.ready.gateway_ms),
        ] {
            let worst = samples.iter().copied().fold(0.0, f64::max);
            t.push(Target {
                name: format!("spawn to ready, {name} (slowest of {})", samples.len()),
                goal: "< 200 ms".into(),
                value: format!("{worst:.1} ms"),
                met: !samples.is_empty() && worst < 200.0,
            });
        }
        let big = &self.big_query;
        let worker_growth = big.mcp.worker_growth_kib.max(big.grpc.worker_growth_kib);
        t.push(Target {
            name: format!("RSS growth serving {} rows, gateway", big.table_rows),
            goal: "< 32 MiB".into(),
            value: format!("{:.1} MiB", mib(big.mcp.gateway_growth_kib)),
            met: mib(big.mcp.gateway_growth_kib) < 32.0,
        });
        t.push(Target {
            name: format!("RSS growth serving {} rows, worker", big.table_rows),
            goal: "< 32 MiB".into(),
            value: format!("{:.1} MiB", mib(worker_growth)),
            met: mib(worker_growth) < 32.0,
        });
        self.targets = t;
    }

    /// The report as markdown tables.
    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        // `write!` into a String cannot fail.
        let _ = writeln!(
            out,
            "Run: {} CPUs ({}), {} MiB, Linux {}, PostgreSQL {}, reached over {}, `{}` binaries{}; gateway threads: {}; each case {}.\n",
            m.cpus,
            m.cpu_model,
            m.memory_mib,
            m.kernel,
            m.postgres,
            m.pg_transport,
            m.profile,
            if m.smoke {
                " — SMOKE RUN, figures not meaningful"
            } else {
                ""
            },
            m.gateway_threads,
            m.measure
        );
        let _ = writeln!(
            out,
            "| case | path | conc. | calls | calls/s | p50 µs | p90 µs | p99 µs |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for l in &self.load {
            let s = &l.stats;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                l.case, l.path, l.concurrency, s.calls, s.calls_per_s, s.p50_us, s.p90_us, s.p99_us
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| CPU µs per call | path | conc. | gateway | worker | PostgreSQL | load client | all | machine busy | calls/s the CPUs allow |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &self.load {
            let c = &l.cpu;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.0} |",
                l.case,
                l.path,
                l.concurrency,
                c.gateway_us,
                c.worker_us,
                c.postgres_us,
                c.client_us,
                c.total_us,
                c.machine_busy_pct,
                c.cpu_bound_calls_per_s
            );
        }
        if let Some(budget) = self.cpu_budget() {
            let _ = writeln!(out, "\n{budget}");
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| process | idle RSS | peak RSS under load | RSS after load |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for (name, p) in [
            ("gateway", &self.memory.gateway),
            ("worker", &self.memory.worker),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
                mib(p.idle_kib),
                mib(p.under_load_kib),
                mib(p.after_load_kib)
            );
        }
        let fmt_samples = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "| spawn → ready | samples (ms) |");
        let _ = writeln!(out, "|---|---|");
        let _ = writeln!(
            out,
            "| worker (grpc.health SERVING) | {} |",
            fmt_samples(&self.ready.worker_ms)
        );
        let _ = writeln!(
            out,
            "| gateway (/readyz 200) | {} |",
            fmt_samples(&self.ready.gateway_ms)
        );
        let b = &self.big_query;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| {} rows (`SELECT * FROM bench_rows`) | rows | time | gateway RSS growth | worker RSS growth |",
            b.table_rows
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| MCP, {} pages of {} rows | {} | {:.0} ms | {:.1} MiB | {:.1} MiB |",
            b.mcp.pages,
            b.mcp.page_size,
            b.mcp.rows,
            b.mcp.elapsed_ms,
            mib(b.mcp.gateway_growth_kib),
            mib(b.mcp.worker_growth_kib)
        );
        let _ = writeln!(
            out,
            "| worker gRPC, one stream | {} | {:.0} ms | – | {:.1} MiB |",
            b.grpc.rows,
            b.grpc.elapsed_ms,
            mib(b.grpc.worker_growth_kib)
        );
        if !self.hops.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "| hop, concurrency 1 | p50 µs | p90 µs | p99 µs |");
            let _ = writeln!(out, "|---|---:|---:|---:|");
            for h in &self.hops {
                let _ = writeln!(
                    out,
                    "| {}: {} | {:.0} | {:.0} | {:.0} |",
                    h.hop, h.what, h.stats.p50_us, h.stats.p90_us, h.stats.p99_us
                );
            }
            if let Some(split) = self.split() {
                let _ = writeln!(out, "\n{split}");
            }
        }
        if !self.pgbench.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "| PostgreSQL alone (pgbench) | conc. | calls | calls/s | mean µs | \
                 CPU µs per call: PostgreSQL | pgbench | machine busy |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
            for p in &self.pgbench {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% |",
                    p.what,
                    p.concurrency,
                    p.calls,
                    p.calls_per_s,
                    p.latency_avg_us,
                    p.cpu.postgres_us,
                    p.cpu.pgbench_us,
                    p.cpu.machine_busy_pct
                );
            }
        }
        if let Some(ceiling) = self.ceiling() {
            let _ = writeln!(out, "\n{ceiling}");
        }
        if let Some(kept) = self.kept() {
            let _ = writeln!(out, "\n{kept}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "| target | goal | this run | met |");
        let _ = writeln!(out, "|---|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name,
                t.goal,
                t.value,
                if t.met { "yes" } else { "**no**" }
            );
        }
        out
    }
}

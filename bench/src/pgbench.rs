//! PostgreSQL on its own, driven by pgbench (the server's own C client):
//! `SELECT 1` as one prepared round trip (to compare pgbench with the sqlx
//! path, i.e. the load client's own cost), and the statements the worker
//! sends for a read pipelined into one round trip. The second is what a
//! driver that pipelines the extended protocol could make of a call; sqlx
//! does not pipeline, so the worker makes three round trips (see the
//! `sqlx-tx` path and docs/performance.md).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::load::Plan;

/// One pgbench script at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchCase {
    /// `select1` or `pipelined`.
    pub script: String,
    pub what: String,
    pub concurrency: usize,
    /// Transactions (one per call) pgbench completed.
    pub calls: u64,
    pub calls_per_s: f64,
    /// pgbench reports the mean, not percentiles.
    pub latency_avg_us: f64,
}

/// The scripts, by name, with what each stands for. The pipelined one is
/// built from the worker's own BEGIN and ROLLBACK messages, one statement
/// per line.
fn scripts(timeout_ms: u32) -> [(&'static str, &'static str, String); 2] {
    use pgmcp_worker::session::{Access, ROLLBACK_AND_UNLOCK, begin_sql};
    let one_per_line = |message: &str| {
        message
            .split("; ")
            .map(|statement| format!("{statement};\n"))
            .collect::<String>()
    };
    let begin = one_per_line(&begin_sql(Access::ReadOnly, timeout_ms, false));
    let end = one_per_line(ROLLBACK_AND_UNLOCK);
    [
        (
            "select1",
            "`SELECT 1`, prepared: one round trip (as the sqlx path)",
            "SELECT 1;\n".to_string(),
        ),
        (
            "pipelined",
            "the worker's statements for a read (its BEGIN message, `SELECT 1`, its ROLLBACK \
             message), one statement each, prepared and pipelined: one round trip",
            format!("\\startpipeline\n{begin}SELECT 1;\n{end}\\endpipeline\n"),
        ),
    ]
}

/// pgbench of the server the cluster runs: beside its `initdb`, or beside
/// the file that `initdb` links to (a `bin` of links on `PATH`), or None.
pub fn find(bindir: &Path) -> Option<PathBuf> {
    let initdb = std::fs::canonicalize(bindir.join("initdb")).ok();
    [Some(bindir), initdb.as_deref().and_then(Path::parent)]
        .into_iter()
        .flatten()
        .map(|dir| dir.join("pgbench"))
        .find(|path| path.is_file())
}

/// Runs every script at every concurrency against `url`, writing the
/// scripts to `dir`. A timed plan runs each case for its measured time
/// (whole seconds; pgbench has no warm-up), a fixed one makes that many
/// transactions per client.
pub async fn run(
    pgbench: &Path,
    url: &str,
    dir: &Path,
    concurrency: &[usize],
    plan: Plan,
    timeout_ms: u32,
) -> Result<Vec<PgbenchCase>> {
    let mut cases = Vec::new();
    for (name, what, text) in scripts(timeout_ms) {
        let file = dir.join(format!("pgbench-{name}.sql"));
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        for &c in concurrency {
            eprintln!("pgmcp-bench: pgbench {name}, concurrency {c}");
            let threads = c.clamp(1, 2);
            let mut cmd = tokio::process::Command::new(pgbench);
            cmd.args(["--no-vacuum", "--protocol=prepared"])
                .arg(format!("--client={c}"))
                .arg(format!("--jobs={threads}"));
            match plan {
                Plan::Timed { measure, .. } => {
                    cmd.arg(format!("--time={}", measure.as_secs_f64().ceil().max(1.0)))
                }
                Plan::Calls(n) => cmd.arg(format!("--transactions={n}")),
            };
            cmd.arg("--file")
                .arg(&file)
                .arg(url)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let out = cmd
                .output()
                .await
                .with_context(|| format!("running {}", pgbench.display()))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "pgbench {name} at concurrency {c} failed ({}):\n{}{}",
                    out.status,
                    stdout,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let (calls, calls_per_s, latency_ms) =
                parse(&stdout).with_context(|| format!("reading pgbench's summary:\n{stdout}"))?;
            cases.push(PgbenchCase {
                script: name.to_string(),
                what: what.to_string(),
                concurrency: c,
                calls,
                calls_per_s,
                latency_avg_us: latency_ms * 1e3,
            });
        }
    }
    Ok(cases)
}

/// Transactions processed, tps and mean latency (ms) from pgbench's summary.
fn parse(out: &str) -> Option<(u64, f64, f64)> {
    let value = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|v| v.split('/').next().unwrap_or(v).to_string())
    };
    let calls = value("number of transactions actually processed:")?
        .parse()
        .ok()?;
    let tps = value("tps =")?.parse().ok()?;
    let latency = value("latency average =")?.parse().ok()?;
    Some((calls, tps, latency))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_the_summary() {
        let out = "transaction type: x.sql\nscaling factor: 1\nquery mode: prepared\n\
                   number of clients: 8\nnumber of threads: 2\nmaximum number of tries: 1\n\
                   duration: 4 s\nnumber of transactions actually processed: 213451\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 0.149 ms\n\
                   initial connection time = 7.112 ms\ntps = 53558.664442 (without initial connection time)\n";
        assert_eq!(parse(out), Some((213451, 53558.664442, 0.149)));
        let fixed = "number of transactions actually processed: 24/24\nlatency average = 0.2 ms\ntps = 100.5 (without initial connection time)\n";
        assert_eq!(parse(fixed), Some((24, 100.5, 0.2)));
        assert_eq!(parse("pgbench: error"), None);
    }

    #[test]
    fn the_pipeline_holds_the_workers_statements_one_per_line() {
        let [_, (_, _, script)] = super::scripts(1234);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.first(), Some(&"\\startpipeline"));
        assert_eq!(lines.get(1), Some(&"BEGIN READ ONLY;"));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("'statement_timeout', '1234'"))
        );
        assert!(lines.contains(&"SELECT 1;"));
        assert!(lines.contains(&"ROLLBACK;"));
        assert_eq!(lines.last(), Some(&"\\endpipeline"));
        assert_eq!(lines.len(), 7, "{script}");
    }
}

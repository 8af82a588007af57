//! PostgreSQL on its own, driven by pgbench (the server's own C client):
//! `SELECT 1` as one prepared round trip (to compare pgbench with the sqlx
//! path, i.e. the load client's own cost); the worker's messages for a read
//! as it sends them, three round trips (PostgreSQL's cost of the worker's
//! protocol, without sqlx as the client); and the same statements pipelined
//! into one round trip: what a driver that pipelines the extended protocol
//! could make of a call. sqlx does not pipeline (see the `sqlx-tx` path and
//! docs/performance.md). Each case also reads the CPU time that PostgreSQL
//! and pgbench spent per transaction.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cpu::{CpuMeter, PgbenchCpu};
use crate::load::Plan;

/// One pgbench script at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchCase {
    /// `select1`, `messages` or `pipelined`.
    pub script: String,
    pub what: String,
    pub concurrency: usize,
    /// Transactions (one per call) pgbench completed.
    pub calls: u64,
    pub calls_per_s: f64,
    /// pgbench reports the mean, not percentiles.
    pub latency_avg_us: f64,
    /// CPU time per transaction of PostgreSQL and of pgbench.
    pub cpu: PgbenchCpu,
}

/// One pgbench script: its name, what it stands for, pgbench's
/// `--protocol`, its variables (`--define`) and its text.
struct Script {
    name: &'static str,
    what: String,
    protocol: &'static str,
    defines: &'static [&'static str],
    text: String,
}

/// Statements kept prepared on the sessions of the `kept` scripts: the
/// worker's default statement cache, and sqlx's.
pub const KEPT: [usize; 2] = [pgmcp_worker::config::STATEMENT_CACHE_CAPACITY, 100];

/// Script text that prepares `n` statements on its session in its first
/// transaction (pgbench keeps a client's variables, and `warmed` starts at
/// 0 by `--define`): what a session of the worker holds once its statement
/// cache is full. The statements are of a realistic length (≈ 250 bytes);
/// SQL-level, which `pg_prepared_statements` lists as it lists the
/// driver's.
fn keep_prepared(n: usize) -> String {
    format!(
        "\\if :warmed = 0\n\
         DO $$ BEGIN FOR i IN 1..{n} LOOP EXECUTE format('PREPARE pgmcp_bench_%s(oid, text) AS \
         SELECT c.oid, c.relname, n.nspname, c.reltuples, c.relkind FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid > $1 AND c.relname <> $2 \
         AND %s > 0 ORDER BY c.relname DESC LIMIT 100', i, i); END LOOP; END $$;\n\
         \\set warmed 1\n\
         \\endif\n"
    )
}

/// The scripts. The last two are built from the worker's own BEGIN and
/// ROLLBACK messages: as the worker sends them (pgbench sends statements
/// joined by `\;` as one message, in its simple protocol only), and one
/// statement per line, prepared and pipelined.
fn scripts(timeout_ms: u32) -> [Script; 5] {
    use pgmcp_worker::session::{Access, ROLLBACK_AND_UNLOCK, begin_sql};
    let begin = begin_sql(Access::ReadOnly, timeout_ms, false);
    let one_message = |message: &str| format!("{};\n", message.replace("; ", "\\; "));
    let one_per_line = |message: &str| {
        message
            .split("; ")
            .map(|statement| format!("{statement};\n"))
            .collect::<String>()
    };
    let messages = format!(
        "{}SELECT 1;\n{}",
        one_message(&begin),
        one_message(ROLLBACK_AND_UNLOCK)
    );
    let kept = |name: &'static str, n: usize, whose: &str| Script {
        name,
        what: format!(
            "the same messages on a session holding {n} prepared statements ({whose} statement cache, full)"
        ),
        protocol: "simple",
        defines: &["warmed=0"],
        text: format!("{}{messages}", keep_prepared(n)),
    };
    [
        Script {
            name: "select1",
            what: "`SELECT 1`, prepared: one round trip (as the sqlx path)".into(),
            protocol: "prepared",
            defines: &[],
            text: "SELECT 1;\n".to_string(),
        },
        Script {
            name: "messages",
            what: "the worker's messages for a read as it sends them (its BEGIN message, `SELECT 1`, \
                   its ROLLBACK message), simple protocol: three round trips (as the `sqlx-tx` path)"
                .into(),
            protocol: "simple",
            defines: &[],
            text: messages.clone(),
        },
        kept("kept-few", KEPT[0], "the worker's default"),
        kept("kept-many", KEPT[1], "sqlx's default"),
        Script {
            name: "pipelined",
            what: "the same statements, one statement each, prepared and pipelined: one round trip"
                .into(),
            protocol: "prepared",
            defines: &[],
            text: format!(
                "\\startpipeline\n{}SELECT 1;\n{}\\endpipeline\n",
                one_per_line(&begin),
                one_per_line(ROLLBACK_AND_UNLOCK)
            ),
        },
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
    meter: &CpuMeter,
    pgbench: &Path,
    url: &str,
    dir: &Path,
    concurrency: &[usize],
    plan: Plan,
    timeout_ms: u32,
) -> Result<Vec<PgbenchCase>> {
    let mut cases = Vec::new();
    for Script {
        name,
        what,
        protocol,
        defines,
        text,
    } in scripts(timeout_ms)
    {
        let file = dir.join(format!("pgbench-{name}.sql"));
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        for &c in concurrency {
            eprintln!("pgmcp-bench: pgbench {name}, concurrency {c}");
            let threads = c.clamp(1, 2);
            let mut cmd = tokio::process::Command::new(pgbench);
            cmd.arg("--no-vacuum")
                .arg(format!("--protocol={protocol}"))
                .arg(format!("--client={c}"))
                .arg(format!("--jobs={threads}"));
            for define in defines {
                cmd.arg(format!("--define={define}"));
            }
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
            let processes = meter.postgres_processes()?;
            let before = meter.snapshot()?;
            let out = cmd
                .output()
                .await
                .with_context(|| format!("running {}", pgbench.display()))?;
            reaped(meter, processes).await?;
            let after = meter.snapshot()?;
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
                what: what.clone(),
                concurrency: c,
                calls,
                calls_per_s,
                latency_avg_us: latency_ms * 1e3,
                cpu: meter.pgbench_per_call(&before, &after, calls),
            });
        }
    }
    Ok(cases)
}

/// Waits until PostgreSQL has reaped the backends of pgbench's connections
/// (back to `processes`), so that their CPU time is counted, for at most
/// five seconds; past that, says that the reading may be short.
async fn reaped(meter: &CpuMeter, processes: usize) -> Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while meter.postgres_processes()? > processes {
        if tokio::time::Instant::now() >= until {
            eprintln!(
                "pgmcp-bench: PostgreSQL still has more processes than before pgbench ran; \
                 its CPU time for this case may be short"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
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
    fn the_messages_are_the_workers_three_messages() {
        let [_, messages, ..] = super::scripts(1234);
        assert_eq!(messages.protocol, "simple");
        let lines: Vec<&str> = messages.text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", messages.text);
        assert!(lines[0].starts_with("BEGIN READ ONLY\\; SELECT "));
        assert!(lines[0].contains("'statement_timeout', '1234'"));
        assert_eq!(lines[0].matches("\\; ").count(), 1, "{}", lines[0]);
        assert_eq!(lines[1], "SELECT 1;");
        assert_eq!(
            lines[2],
            "ROLLBACK\\; SELECT pg_catalog.pg_advisory_unlock_all();"
        );
    }

    #[test]
    fn the_kept_scripts_prepare_statements_once_then_send_the_messages() {
        let [_, messages, few, many, _] = super::scripts(1234);
        for (script, n) in [(few, super::KEPT[0]), (many, 100)] {
            assert_eq!(script.protocol, "simple");
            assert_eq!(script.defines, ["warmed=0"]);
            let lines: Vec<&str> = script.text.lines().collect();
            assert_eq!(lines[0], "\\if :warmed = 0", "{}", script.text);
            assert!(lines[1].starts_with(&format!("DO $$ BEGIN FOR i IN 1..{n} LOOP ")));
            assert!(lines[1].ends_with("END LOOP; END $$;"), "{}", lines[1]);
            assert_eq!(lines[2..4], ["\\set warmed 1", "\\endif"]);
            assert_eq!(lines[4..].join("\n") + "\n", messages.text);
            assert!(script.what.contains(&format!("holding {n} prepared")));
        }
    }

    #[test]
    fn the_pipeline_holds_the_workers_statements_one_per_line() {
        let [.., pipelined] = super::scripts(1234);
        assert_eq!(pipelined.protocol, "prepared");
        let script = pipelined.text;
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

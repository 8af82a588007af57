//! The harness in smoke mode: a few calls per case against real processes.
//! Checks that every section of the report is there; never timings.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

#[test]
fn smoke_run_writes_every_section() -> Result<()> {
    let out = tempfile::tempdir()?;
    let run = Command::new(env!("CARGO_BIN_EXE_pgmcp-bench"))
        .args(["--smoke", "--rows", "20000", "--out"])
        .arg(out.path())
        .output()
        .context("running pgmcp-bench")?;
    ensure!(
        run.status.success(),
        "pgmcp-bench --smoke failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("report.json"))?;
    let report: Value = serde_json::from_str(&text)?;

    ensure!(report["meta"]["smoke"] == true, "meta: {}", report["meta"]);
    let load = report["load"].as_array().context("no load section")?;
    for case in ["SELECT 1", "1,000 rows"] {
        for path in ["sqlx", "sqlx-tx", "grpc", "mcp"] {
            for concurrency in [1, 8, 32] {
                let found = load.iter().find(|l| {
                    l["case"] == case && l["path"] == path && l["concurrency"] == concurrency
                });
                let l = found.with_context(|| format!("no {case} / {path} / {concurrency}"))?;
                for key in ["calls", "calls_per_s", "p50_us", "p90_us", "p99_us"] {
                    ensure!(l[key].is_number(), "{case}/{path}/{concurrency}: no {key}");
                }
                ensure!(l["calls"].as_u64() == Some(3 * concurrency), "calls: {l}");
                for key in [
                    "gateway_us",
                    "worker_us",
                    "postgres_us",
                    "client_us",
                    "total_us",
                    "machine_busy_pct",
                    "cpu_bound_calls_per_s",
                ] {
                    ensure!(
                        l["cpu"][key].as_f64().is_some_and(|v| v >= 0.0),
                        "{case}/{path}/{concurrency}: cpu.{key}: {l}"
                    );
                }
            }
        }
    }
    for process in ["gateway", "worker"] {
        for key in ["idle_kib", "under_load_kib", "after_load_kib"] {
            ensure!(
                report["memory"][process][key]
                    .as_u64()
                    .is_some_and(|v| v > 0),
                "memory.{process}.{key}: {}",
                report["memory"]
            );
        }
    }
    for key in ["worker_ms", "gateway_ms"] {
        ensure!(
            report["ready"][key]
                .as_array()
                .is_some_and(|v| !v.is_empty()),
            "ready.{key}"
        );
    }
    let big = &report["big_query"];
    ensure!(big["table_rows"] == 20000, "big_query: {big}");
    ensure!(
        big["mcp"]["rows"] == 20000 && big["mcp"]["pages"] == 2,
        "big_query.mcp: {big}"
    );
    ensure!(big["grpc"]["rows"] == 20000, "big_query.grpc: {big}");
    for key in ["gateway_growth_kib", "worker_growth_kib"] {
        ensure!(big["mcp"][key].is_u64(), "big_query.mcp.{key}");
    }
    let hops = report["hops"].as_array().context("no hops section")?;
    for hop in ["http", "grpc"] {
        let h = hops
            .iter()
            .find(|h| h["hop"] == hop)
            .with_context(|| format!("no {hop} hop"))?;
        ensure!(h["calls"] == 3 && h["p50_us"].is_number(), "hop {hop}: {h}");
    }
    // pgbench ships with the PostgreSQL server the harness needs.
    let pgbench = report["pgbench"].as_array().context("no pgbench section")?;
    for script in ["select1", "messages", "kept-few", "kept-many", "pipelined"] {
        for concurrency in [1, 8, 32] {
            let p = pgbench
                .iter()
                .find(|p| p["script"] == script && p["concurrency"] == concurrency)
                .with_context(|| format!("no pgbench {script} / {concurrency}"))?;
            ensure!(
                p["calls"].as_u64() == Some(3 * concurrency)
                    && p["calls_per_s"].is_number()
                    && ["postgres_us", "pgbench_us", "machine_busy_pct"]
                        .iter()
                        .all(|f| p["cpu"][f].is_number()),
                "pgbench {script}: {p}"
            );
        }
    }
    let targets = report["targets"].as_array().context("no targets")?;
    ensure!(targets.len() == 9, "targets: {}", report["targets"]);
    ensure!(
        targets.iter().all(|t| t["met"].is_boolean()),
        "targets: {}",
        report["targets"]
    );
    let md = std::fs::read_to_string(out.path().join("report.md"))?;
    ensure!(md.contains("| target | goal | this run | met |"), "{md}");
    ensure!(md.contains("in the gateway."), "{md}");
    ensure!(
        md.contains("| CPU µs per call |") && md.contains("µs per call for all four."),
        "{md}"
    );
    ensure!(
        md.contains("to sqlx (`sqlx-tx`) and at")
            && md.contains("pipelined into one round trip (pgbench)")
            && md.contains("CPU µs per call: PostgreSQL | pgbench |")
            && md.contains("µs on the same statements pipelined")
            && md.contains("(the worker's statement cache, full)"),
        "{md}"
    );
    ensure!(
        md.contains(", reached over its Unix-domain socket,"),
        "{md}"
    );
    Ok(())
}

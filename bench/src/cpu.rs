//! CPU time per call: what the gateway, the worker, PostgreSQL and the load
//! client each spend on one call, from their user and system time in
//! `/proc` before and after a load case's measured window.
//!
//! On a machine that everything shares, calls/s at high concurrency is
//! bounded by the CPUs divided by the CPU time all processes spend per
//! call; these figures say whose time that is.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// The processes a [`Snapshot`] reads.
pub struct CpuMeter {
    gateway: u32,
    worker: u32,
    /// PostgreSQL's postmaster: its backends are its children.
    postmaster: u32,
    /// Clock ticks per second of `/proc`'s times (`_SC_CLK_TCK`).
    ticks_per_s: f64,
    cpus: f64,
}

/// CPU time used so far, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    gateway: u64,
    worker: u64,
    postgres: u64,
    client: u64,
    /// This process's children that it has waited for (pgbench).
    reaped: u64,
    /// All CPUs of the machine: ticks busy and ticks in all.
    machine_busy: u64,
    machine_all: u64,
}

/// CPU time per call of one load case, in µs, and how busy the machine was.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerCall {
    pub gateway_us: f64,
    pub worker_us: f64,
    /// Every PostgreSQL process: the backends, the postmaster and its
    /// helpers.
    pub postgres_us: f64,
    /// This process: the load client.
    pub client_us: f64,
    /// The four together.
    pub total_us: f64,
    /// Share of all CPUs busy during the window, anything on the machine
    /// included, in percent.
    pub machine_busy_pct: f64,
    /// What the machine's CPUs could serve at `total_us` per call, with
    /// nothing else running: CPUs / `total_us`.
    pub cpu_bound_calls_per_s: f64,
}

impl CpuMeter {
    /// `data_dir` is the cluster's data directory, for `postmaster.pid`.
    pub fn new(gateway: u32, worker: u32, data_dir: &Path) -> Result<Self> {
        let pid_file = data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let postmaster = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no pid on the first line of {}", pid_file.display()))?;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .context("sysconf(_SC_CLK_TCK)")?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(CpuMeter {
            gateway,
            worker,
            postmaster,
            ticks_per_s: ticks as f64,
            cpus: cpus as f64,
        })
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        let (machine_busy, machine_all) = machine(&read("/proc/stat")?)?;
        let client = ProcStat::of("self")?;
        Ok(Snapshot {
            gateway: ProcStat::of(&self.gateway.to_string())?.own,
            worker: ProcStat::of(&self.worker.to_string())?.own,
            postgres: self.postgres()?,
            client: client.own,
            reaped: client.reaped,
            machine_busy,
            machine_all,
        })
    }

    /// The postmaster's own time and that of its children: the ones running
    /// now, and the ones it has reaped (a backend that exits hands its time
    /// to the postmaster's `cutime`/`cstime`).
    fn postgres(&self) -> Result<u64> {
        let postmaster = ProcStat::of(&self.postmaster.to_string())?;
        let children: u64 = self.postgres_children()?.iter().map(|c| c.own).sum();
        Ok(postmaster.own + postmaster.reaped + children)
    }

    /// How many processes the postmaster has now: backends and helpers,
    /// ended ones it has not reaped yet included. A backend's time moves
    /// to the postmaster's reaped time only once it is reaped, so a reading
    /// taken while connections close waits until this is back down.
    pub fn postgres_processes(&self) -> Result<usize> {
        Ok(self.postgres_children()?.len())
    }

    fn postgres_children(&self) -> Result<Vec<ProcStat>> {
        let mut children = Vec::new();
        for entry in std::fs::read_dir("/proc").context("listing /proc")? {
            let Some(name) = entry.ok().and_then(|e| e.file_name().into_string().ok()) else {
                continue;
            };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // A process may end between the listing and the read.
            if let Ok(stat) = ProcStat::of(&name)
                && stat.parent == self.postmaster
            {
                children.push(stat);
            }
        }
        Ok(children)
    }

    /// CPU time per call between two snapshots.
    pub fn per_call(&self, before: &Snapshot, after: &Snapshot, calls: usize) -> CpuPerCall {
        let calls = calls.max(1) as f64;
        let us = |b: u64, a: u64| a.saturating_sub(b) as f64 * 1e6 / self.ticks_per_s / calls;
        let gateway_us = us(before.gateway, after.gateway);
        let worker_us = us(before.worker, after.worker);
        let postgres_us = us(before.postgres, after.postgres);
        let client_us = us(before.client, after.client);
        let total_us = gateway_us + worker_us + postgres_us + client_us;
        CpuPerCall {
            gateway_us: round1(gateway_us),
            worker_us: round1(worker_us),
            postgres_us: round1(postgres_us),
            client_us: round1(client_us),
            total_us: round1(total_us),
            machine_busy_pct: busy_pct(before, after),
            cpu_bound_calls_per_s: if total_us > 0.0 {
                (self.cpus * 1e6 / total_us).round()
            } else {
                0.0
            },
        }
    }

    /// CPU time per transaction of a pgbench run between two snapshots:
    /// PostgreSQL's, and pgbench's own (a child this process has waited
    /// for by `after`).
    pub fn pgbench_per_call(&self, before: &Snapshot, after: &Snapshot, calls: u64) -> PgbenchCpu {
        let calls = calls.max(1) as f64;
        let us =
            |b: u64, a: u64| round1(a.saturating_sub(b) as f64 * 1e6 / self.ticks_per_s / calls);
        PgbenchCpu {
            postgres_us: us(before.postgres, after.postgres),
            pgbench_us: us(before.reaped, after.reaped),
            machine_busy_pct: busy_pct(before, after),
        }
    }
}

/// CPU time per transaction of one pgbench case, in µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PgbenchCpu {
    /// Every PostgreSQL process, as in [`CpuPerCall`].
    pub postgres_us: f64,
    /// pgbench itself, the client.
    pub pgbench_us: f64,
    /// Share of all CPUs busy during the run, in percent.
    pub machine_busy_pct: f64,
}

/// Share of all CPUs busy between two snapshots, in percent.
fn busy_pct(before: &Snapshot, after: &Snapshot) -> f64 {
    let all = after.machine_all.saturating_sub(before.machine_all);
    let busy = after.machine_busy.saturating_sub(before.machine_busy);
    if all > 0 {
        round1(100.0 * busy as f64 / all as f64)
    } else {
        0.0
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// What `/proc/PID/stat` says of a process, in clock ticks.
struct ProcStat {
    /// ppid (field 4).
    parent: u32,
    /// utime + stime (fields 14 and 15).
    own: u64,
    /// cutime + cstime (fields 16 and 17): the children it has reaped.
    reaped: u64,
}

impl ProcStat {
    /// `pid` is a process id or `self`.
    fn of(pid: &str) -> Result<Self> {
        Self::parse(&read(&format!("/proc/{pid}/stat"))?)
    }

    fn parse(stat: &str) -> Result<Self> {
        // The command name may hold spaces and parentheses: the fields that
        // follow its last `)` start with field 3, the state.
        let (_, rest) = stat
            .rsplit_once(')')
            .context("/proc/PID/stat without a command name")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |number: usize| -> Result<u64> {
            fields
                .get(number - 3)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no field {number} in /proc/PID/stat"))
        };
        Ok(ProcStat {
            parent: u32::try_from(field(4)?).context("ppid out of range")?,
            own: field(14)? + field(15)?,
            reaped: field(16)? + field(17)?,
        })
    }
}

/// Busy and total ticks of all CPUs, from `/proc/stat`'s first line: user,
/// nice, system, idle, iowait, irq, softirq, steal (guest time is already
/// in user).
fn machine(proc_stat: &str) -> Result<(u64, u64)> {
    let line = proc_stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    anyhow::ensure!(v.len() == 8, "short cpu line in /proc/stat: {line}");
    let all: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Ok((all - idle, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line, with a command name holding a space and a parenthesis.
    const STAT: &str = "4242 (tokio (rt) 1) S 4200 4242 4242 0 -1 4194560 1939 0 0 0 \
                        150 37 12 5 20 0 3 0 123456 152844000 3782 18446744073709551615";

    #[test]
    fn reads_times_and_parent_past_an_odd_command_name() -> Result<()> {
        let stat = ProcStat::parse(STAT)?;
        assert_eq!(stat.own, 187);
        assert_eq!(stat.reaped, 17);
        assert_eq!(stat.parent, 4200);
        Ok(())
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() -> Result<()> {
        let stat = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(machine(stat)?, (160, 1000));
        Ok(())
    }

    #[test]
    fn per_call_divides_each_process_by_the_calls() {
        let meter = CpuMeter {
            gateway: 1,
            worker: 2,
            postmaster: 3,
            ticks_per_s: 100.0,
            cpus: 2.0,
        };
        let before = Snapshot {
            gateway: 10,
            worker: 20,
            postgres: 30,
            client: 5,
            reaped: 7,
            machine_busy: 0,
            machine_all: 0,
        };
        // 1,000 calls; 1 tick is 10 ms, so 10 µs per call.
        let after = Snapshot {
            gateway: 20,
            worker: 40,
            postgres: 60,
            client: 5,
            reaped: 12,
            machine_busy: 90,
            machine_all: 100,
        };
        let c = meter.per_call(&before, &after, 1000);
        assert_eq!(c.gateway_us, 100.0);
        assert_eq!(c.worker_us, 200.0);
        assert_eq!(c.postgres_us, 300.0);
        assert_eq!(c.client_us, 0.0);
        assert_eq!(c.total_us, 600.0);
        assert_eq!(c.machine_busy_pct, 90.0);
        assert_eq!(c.cpu_bound_calls_per_s, 3333.0);
        // pgbench: 500 transactions, 5 ticks of its own.
        let p = meter.pgbench_per_call(&before, &after, 500);
        assert_eq!(p.postgres_us, 600.0);
        assert_eq!(p.pgbench_us, 100.0);
        assert_eq!(p.machine_busy_pct, 90.0);
    }
}

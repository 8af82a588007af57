//! `pgmcp`: one binary for every part of pgmcp.
//!
//! - `pgmcp worker …` runs a worker (the same flags as `pgmcp-worker`),
//! - `pgmcp gateway …` runs a gateway (the same flags as `pgmcp-gateway`),
//! - `pgmcp up …` runs PostgreSQL, workers and gateways on this machine.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod up;

/// pgmcp: an MCP server for PostgreSQL.
#[derive(Parser)]
#[command(name = "pgmcp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run PostgreSQL, workers and gateways on this machine
    ///
    /// Starts a throwaway PostgreSQL with a demo database (unless
    /// --database-url is given), M workers and N gateways as separate
    /// processes, and prints the MCP URL and client configuration. Ctrl-C
    /// stops everything and deletes the throwaway database.
    Up(up::UpArgs),
    /// Run a worker (owns the database connections, runs SQL for gateways)
    ///
    /// Takes the same flags as `pgmcp-worker`.
    Worker(Box<pgmcp_worker::Args>),
    /// Run a gateway (the MCP server, over Streamable HTTP or stdio)
    ///
    /// Takes the same flags as `pgmcp-gateway`.
    Gateway(Box<pgmcp_gateway::Args>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Worker(args) => {
            stop_with_parent();
            report("pgmcp worker", pgmcp_worker::run(*args).await)
        }
        Command::Gateway(args) => {
            stop_with_parent();
            report("pgmcp gateway", pgmcp_gateway::run(*args).await)
        }
    }
}

/// When started by `pgmcp up` (which sets [`up::PARENT_PID_ENV`]), stops
/// this process the way Ctrl-C would (SIGTERM to itself) once that parent is
/// gone, so that even a killed `pgmcp up` leaves no workers or gateways behind.
fn stop_with_parent() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::{getpid, getppid};
    let Some(parent) = std::env::var(up::PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    tokio::spawn(async move {
        while getppid().as_raw() == parent {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        tracing::warn!("pgmcp up (pid {parent}) is gone; stopping");
        let _ = kill(getpid(), Signal::SIGTERM);
    });
}

fn report(what: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

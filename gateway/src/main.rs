use clap::Parser;

/// pgmcp gateway: MCP server for PostgreSQL, backed by pgmcp workers.
#[derive(Parser)]
#[command(name = "pgmcp-gateway", version)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_gateway::Args,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.args.threads {
        runtime.worker_threads(threads.into());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pgmcp-gateway: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pgmcp_gateway::run(cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

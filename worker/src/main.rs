use clap::Parser;

/// pgmcp worker: runs SQL against PostgreSQL for pgmcp gateways (gRPC).
#[derive(Parser)]
#[command(name = "pgmcp-worker", version)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_worker::Args,
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
            eprintln!("pgmcp-worker: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pgmcp_worker::run(cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

use clap::Parser;

/// pgmcp worker: runs SQL against PostgreSQL for pgmcp gateways (gRPC).
#[derive(Parser)]
#[command(name = "pgmcp-worker", version)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_worker::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match pgmcp_worker::run(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

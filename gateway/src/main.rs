use clap::Parser;

/// pgmcp gateway: MCP server for PostgreSQL, backed by pgmcp workers.
#[derive(Parser)]
#[command(name = "pgmcp-gateway", version)]
struct Cli {
    #[command(flatten)]
    args: pgmcp_gateway::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match pgmcp_gateway::run(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgmcp-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

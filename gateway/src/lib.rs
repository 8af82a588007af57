//! pgmcp gateway: the MCP front end.

pub mod config;

pub use config::{Args, Config};

/// Runs a gateway with `args` until SIGINT or SIGTERM (or stdin closes with `--stdio`).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _config = Config::from_args(&args)?;
    anyhow::bail!("not yet assembled")
}

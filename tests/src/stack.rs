//! The whole path in one value: PostgreSQL → worker → gateway → MCP client.

use anyhow::Result;

use crate::gateway::InProcessGateway;
use crate::mcp::{self, Client};
use crate::pg::Pg;
use crate::worker::InProcessWorker;

/// A cluster with database `app` (owned by the ordinary role
/// [`crate::pg::OWNER`], as which the worker connects), one worker serving
/// it and one gateway.
pub struct Stack {
    pub client: Client,
    pub gateway: InProcessGateway,
    pub worker: InProcessWorker,
    pub pg: Pg,
}

impl Stack {
    /// Starts the stack; `setup` runs in database `app` first, as the owner
    /// role, so everything it creates belongs to the role the worker uses.
    pub async fn start(setup: &str) -> Result<Self> {
        Self::start_with(setup, &[], &[]).await
    }

    /// As [`Stack::start`], with extra worker and gateway flags.
    pub async fn start_with(
        setup: &str,
        worker_flags: &[&str],
        gateway_flags: &[&str],
    ) -> Result<Self> {
        Self::start_full(setup, "", worker_flags, gateway_flags).await
    }

    /// As [`Stack::start_with`]; then `superuser_setup` runs in `app` as the
    /// superuser, for what the owner role may not do (untrusted extensions,
    /// roles). Objects it creates belong to the superuser unless it hands
    /// them over.
    pub async fn start_full(
        setup: &str,
        superuser_setup: &str,
        worker_flags: &[&str],
        gateway_flags: &[&str],
    ) -> Result<Self> {
        let pg = Pg::start()?;
        let url = pg.create_db("app").await?;
        if !setup.is_empty() {
            pg.exec("app", setup).await?;
        }
        if !superuser_setup.is_empty() {
            pg.exec_as_superuser("app", superuser_setup).await?;
        }
        let mut flags = vec!["--database-url", url.as_str()];
        flags.extend_from_slice(worker_flags);
        let worker = InProcessWorker::start(&flags).await?;
        let gateway = InProcessGateway::start(&[worker.url()], gateway_flags).await?;
        let client = mcp::http_client(&gateway.mcp_url()).await?;
        Ok(Stack {
            client,
            gateway,
            worker,
            pg,
        })
    }

    /// Calls tool `query` with `args`.
    pub async fn query(&self, args: serde_json::Value) -> Result<rmcp::model::CallToolResult> {
        mcp::call_tool(&self.client, "query", args).await
    }
}

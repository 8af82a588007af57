//! A throwaway PostgreSQL cluster for one test.
//!
//! Test databases belong to [`OWNER`], an ordinary role (no superuser, no
//! BYPASSRLS) that owns them and everything the setup SQL creates, like an
//! application schema owner would: workers connect as it, so read-only
//! enforcement is all that stands between a query and the data. The
//! superuser is for what only it may do (creating roles, looking at every
//! session).

use anyhow::{Context, Result};
use pgmcp::cluster::Cluster;
use sqlx::{Connection, Executor, PgConnection};

/// The ordinary role that owns the databases made by [`Pg::create_db`].
pub const OWNER: &str = "app";

/// A running cluster; stopped and deleted on drop.
pub struct Pg {
    cluster: Cluster,
}

impl Pg {
    /// Starts a fresh cluster (blocking; takes about a second).
    pub fn start() -> Result<Self> {
        Ok(Pg {
            cluster: Cluster::start()?,
        })
    }

    /// Starts a cluster with extra `postgres` arguments
    /// (`["-c", "name=value", …]`).
    pub fn start_with(postgres_args: &[&str]) -> Result<Self> {
        Ok(Pg {
            cluster: Cluster::start_with(postgres_args)?,
        })
    }

    /// Stops the server (sessions are ended), keeping its data.
    pub fn pause(&mut self) {
        self.cluster.pause();
    }

    /// Starts the server again, on the same port, with the same data.
    pub fn resume(&mut self) -> Result<()> {
        self.cluster.resume()
    }

    /// URL of `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// URL of `database` as [`OWNER`].
    pub fn owner_url(&self, database: &str) -> String {
        self.role_url(OWNER, database)
    }

    /// URL of `database` as `role` (the cluster trusts local connections).
    pub fn role_url(&self, role: &str, database: &str) -> String {
        format!(
            "postgres://{role}@127.0.0.1:{}/{database}",
            self.cluster.port()
        )
    }

    /// Runs `sql` (one or more statements, simple protocol) in `database`
    /// as [`OWNER`].
    pub async fn exec(&self, database: &str, sql: &str) -> Result<()> {
        run(&self.owner_url(database), sql).await
    }

    /// Runs `sql` in `database` as the superuser.
    pub async fn exec_as_superuser(&self, database: &str, sql: &str) -> Result<()> {
        run(&self.url(database), sql).await
    }

    /// Creates database `name` owned by [`OWNER`] (creating the role on
    /// first use) and returns its URL as [`OWNER`].
    pub async fn create_db(&self, name: &str) -> Result<String> {
        self.exec_as_superuser(
            "postgres",
            &format!(
                "DO $$ BEGIN CREATE ROLE \"{OWNER}\" LOGIN NOSUPERUSER NOBYPASSRLS; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ),
        )
        .await?;
        self.exec_as_superuser(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" OWNER \"{OWNER}\""),
        )
        .await?;
        Ok(self.owner_url(name))
    }

    /// Fetches the first column of every row of `sql`, as text (run as the
    /// superuser, which sees everything).
    pub async fn column(&self, database: &str, sql: &str) -> Result<Vec<Option<String>>> {
        use sqlx::Row;
        let mut conn = PgConnection::connect(&self.url(database)).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<Option<String>, _>(0).map_err(Into::into))
            .collect()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

async fn run(url: &str, sql: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
        .await
        .with_context(|| format!("running setup SQL: {sql}"))?;
    Ok(())
}

//! A throwaway PostgreSQL cluster for one test.

use anyhow::{Context, Result};
use pgmcp::cluster::Cluster;
use sqlx::{Connection, Executor, PgConnection};

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

    /// URL of `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// Runs `sql` (one or more statements, simple protocol) in `database`.
    pub async fn exec(&self, database: &str, sql: &str) -> Result<()> {
        let mut conn = PgConnection::connect(&self.url(database))
            .await
            .with_context(|| format!("connecting to {database}"))?;
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .with_context(|| format!("running setup SQL: {sql}"))?;
        Ok(())
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_db(&self, name: &str) -> Result<String> {
        self.exec("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await?;
        Ok(self.url(name))
    }

    /// Fetches the first column of every row of `sql`, as text.
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

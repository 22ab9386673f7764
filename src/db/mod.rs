//! Everything that talks to PostgreSQL: the pool, migrations, the private cluster, and one
//! module per aggregate. Functions take a connection (`&mut PgConnection`) so that callers
//! compose them inside one transaction.

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod catalog;
pub mod cluster;
pub mod duties;
pub mod feeds;
pub mod hot;
pub mod notifications;
pub mod orgs;
pub mod overview;
pub mod people;
pub mod records;
pub mod rules;
pub mod settings;
pub mod systems;
pub mod tree;
pub mod users;

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::Config;
use cluster::LocalCluster;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Advisory lock keys (one namespace for the whole portal).
pub mod locks {
    /// Held exclusively while rule periods are materialized; shared by changes that
    /// create duties for single organisations, so the two never miss each other.
    pub const LIABILITY: i64 = 0x7a72_7a00_0001;
    /// Held while audit entries are sealed into the hash chain.
    pub const AUDIT_SEAL: i64 = 0x7a72_7a00_0002;
}

/// An open database: the pool, and the private cluster when this process started one.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<LocalCluster>,
}

impl Database {
    /// Connect to `DATABASE_URL`, or to the private cluster in the data directory (started
    /// if it is not running), then apply pending migrations.
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        let (url, cluster) = match &config.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let cluster = LocalCluster::attach_or_start(&config.data_dir, "zerenzhi").await?;
                (cluster.database_url("zerenzhi"), Some(cluster))
            }
        };
        let pool = match connect(&url, config.pool_size).await {
            Ok(pool) => pool,
            Err(e) => {
                if let Some(c) = cluster {
                    c.stop().await.ok();
                }
                return Err(e);
            }
        };
        let db = Database { pool, cluster };
        if let Err(e) = MIGRATOR.run(&db.pool).await.context("applying database migrations") {
            db.close().await;
            return Err(e);
        }
        Ok(db)
    }

    /// Close the pool and stop the private cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster
            && let Err(e) = cluster.stop().await
        {
            tracing::error!("stopping the private PostgreSQL cluster failed: {e:#}");
        }
    }
}

/// A pool with the settings every process uses.
pub async fn connect(url: &str, size: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size.max(2))
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // A ping before every acquire costs 15–25 % of throughput; a dead connection
        // fails its query instead, and the pool replaces it.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // The portal's instants are UTC in the database; never rely on the server's zone.
                sqlx::query("set time zone 'UTC'").execute(conn).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .with_context(|| "connecting to PostgreSQL (check DATABASE_URL, or unset it to use the private cluster)")
}

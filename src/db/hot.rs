//! A small pool for the hottest reads (the session lookup on every page, the workbench),
//! which every page request goes through.
//!
//! sqlx's pool pings a connection each time one is given back (one more round trip to
//! PostgreSQL) and gives it back from a spawned task; for a page made of a few small
//! indexed reads that was a quarter of its round trips. Here a connection goes back to
//! the idle list at once, without a ping, but only when the caller says it is done
//! ([`HotConn::release`]): one dropped on an error or while a query was in flight (the
//! client went away) is closed instead, so a connection in an unknown state is never
//! reused.
//!
//! Its connections run every prepared statement on its generic plan
//! (`plan_cache_mode = force_generic_plan`): the reads that use it are known to have
//! good generic plans, and PostgreSQL otherwise re-plans each on every call when it
//! guesses a custom plan might be cheaper (three times their execution; see
//! `duties::for_orgs_year`).

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a caller waits for a connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct HotPool {
    inner: Arc<Inner>,
}

struct Inner {
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    options: PgConnectOptions,
}

impl HotPool {
    /// A pool of at most half the main pool's size (at least two), on the same database,
    /// connecting lazily.
    pub fn beside(pool: &PgPool) -> HotPool {
        let size = (pool.options().get_max_connections() / 2).max(2) as usize;
        HotPool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                options: (*pool.connect_options()).clone(),
            }),
        }
    }

    /// An idle connection, or a new one when none is idle and the pool is not full.
    pub async fn acquire(&self) -> sqlx::Result<HotConn> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(HotConn { conn: Some(conn), inner: self.inner.clone(), _permit: permit })
    }

    async fn connect(&self) -> sqlx::Result<PgConnection> {
        let mut conn = self.inner.options.connect().await?;
        sqlx::query("set time zone 'UTC'").execute(&mut conn).await?;
        sqlx::query("set plan_cache_mode = force_generic_plan").execute(&mut conn).await?;
        Ok(conn)
    }
}

/// A connection of the [`HotPool`]; goes back to the pool on [`HotConn::release`], and
/// is closed if dropped without it.
pub struct HotConn {
    conn: Option<PgConnection>,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl HotConn {
    /// Give the connection back for reuse: every query on it has completed.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
    }
}

impl Deref for HotConn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a HotConn holds its connection until released")
    }
}

impl DerefMut for HotConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a HotConn holds its connection until released")
    }
}

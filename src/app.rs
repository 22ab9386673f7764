//! The shared context of a running portal: the pool, the clock, the settings, and the
//! per-process caches. The web server and the scheduler both hold one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::duties::{self, Materialized, Materializer};
use crate::db::overview::CountsCache;
use crate::db::settings::{self, Settings};
use crate::domain::time::local_date;

#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub pool: PgPool,
    /// For the hottest reads: no ping on release, generic plans ([`crate::db::hot`]).
    pub hot_reads: crate::db::hot::HotPool,
    pub clock: Clock,
    pub config: Config,
    settings: RwLock<Arc<Settings>>,
    pub materializer: Materializer,
    /// The subtree overview's kept counts; told of every change made through this process.
    pub counts: CountsCache,
    /// Rule versions' unchanging text, kept once read ([`crate::db::catalog`]).
    pub catalog: crate::db::catalog::RuleCatalog,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Load the settings (fixing the time zone on a new installation) and build the context.
    pub async fn new(pool: PgPool, clock: Clock, config: Config) -> anyhow::Result<App> {
        let mut conn = pool.acquire().await?;
        let s = settings::load_or_install(&mut conn, &config.time_zone).await?;
        drop(conn);
        Ok(App(Arc::new(Inner {
            hot_reads: crate::db::hot::HotPool::beside(&pool),
            pool,
            clock,
            counts: CountsCache::new(Duration::from_secs(config.overview_cache_seconds)),
            catalog: Default::default(),
            config,
            settings: RwLock::new(Arc::new(s)),
            materializer: Materializer::default(),
        })))
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().map(|s| s.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Re-read the settings from the database (after a change, or on a scheduler pass).
    pub async fn reload_settings(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let s = settings::load(&mut conn).await?;
        match self.settings.write() {
            Ok(mut guard) => *guard = Arc::new(s),
            Err(e) => *e.into_inner() = Arc::new(s),
        }
        Ok(())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today's local date at `now`.
    pub fn today_at(&self, now: DateTime<Utc>) -> NaiveDate {
        local_date(self.settings().tz, now)
    }

    /// Make sure every owed duty of every started period exists (cheap until the clock
    /// crosses a month boundary). Call before opening a transaction that reads or writes
    /// duties.
    pub async fn ensure_duties(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        if self.materializer.due(now) {
            self.materialize(now).await?;
        }
        Ok(())
    }

    /// One materialization pass at `now`, for a reader and for the scheduler alike: it
    /// remembers how far it reached, and when it made duties the overview's kept counts
    /// serve no more.
    pub async fn materialize(&self, now: DateTime<Utc>) -> anyhow::Result<Materialized> {
        let (done, through) = duties::materialize_all(&self.pool, &self.settings(), now).await?;
        self.materializer.remember(through);
        if done.rule_periods > 0 {
            self.counts.changed();
        }
        Ok(done)
    }
}

//! Settings from command-line flags and `ZRZ_*` environment variables. Every variable is
//! listed in the README; a flag wins over its variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;

/// Options shared by every command.
#[derive(Clone, Args)]
pub struct Config {
    /// PostgreSQL to use. Without it, a private cluster in the data directory is started.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where the private PostgreSQL cluster and uploaded files live.
    #[arg(long, env = "ZRZ_DATA_DIR", default_value = "./zerenzhi-data", global = true)]
    pub data_dir: PathBuf,

    /// Where attachments are stored (content-addressed). Default: DATA_DIR/files.
    #[arg(long, env = "ZRZ_FILES_DIR", global = true)]
    pub files_dir: Option<PathBuf>,

    /// Address the web server listens on.
    #[arg(long, env = "ZRZ_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub addr: SocketAddr,

    /// Start the clock at this RFC 3339 instant (demos and acceptance tests only).
    #[arg(long = "clock", env = "ZRZ_NOW", global = true, value_parser = parse_instant)]
    pub now: Option<DateTime<Utc>>,

    /// Seconds between scheduler passes inside `serve`; 0 turns the scheduler off there.
    #[arg(long, env = "ZRZ_TICK_SECONDS", default_value_t = 60, global = true)]
    pub tick_seconds: u64,

    /// The deployment's time zone, fixed at installation (it cannot change once duties exist).
    #[arg(long, env = "ZRZ_TIME_ZONE", default_value = "Asia/Shanghai", global = true)]
    pub time_zone: String,

    /// Connections in the pool of each process.
    #[arg(long, env = "ZRZ_POOL_SIZE", default_value_t = 8, global = true)]
    pub pool_size: u32,

    /// The portal's public URL; an https:// URL turns on Secure cookies and HSTS.
    #[arg(long, env = "ZRZ_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Minutes a session may stay idle before it ends.
    #[arg(long, env = "ZRZ_SESSION_IDLE_MINUTES", default_value_t = 30, global = true)]
    pub session_idle_minutes: i64,

    /// Hours after sign-in a session ends, however active.
    #[arg(long, env = "ZRZ_SESSION_MAX_HOURS", default_value_t = 12, global = true)]
    pub session_max_hours: i64,

    /// Seconds a subtree overview's counts may be served from this server's copy when
    /// another process (a `tick` command, another server) changed duties meanwhile;
    /// changes made through this server show at once. 0 reads them on every view.
    #[arg(long, env = "ZRZ_OVERVIEW_CACHE_SECONDS", default_value_t = 10, global = true)]
    pub overview_cache_seconds: u64,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ZRZ_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

impl Config {
    pub fn files_dir(&self) -> PathBuf {
        self.files_dir.clone().unwrap_or_else(|| self.data_dir.join("files"))
    }

    /// Whether the portal is served over HTTPS (cookies get `Secure` and the `__Host-` prefix).
    pub fn https(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// A configuration with every default, for tests.
    pub fn for_tests(database_url: String, data_dir: PathBuf) -> Config {
        Config {
            database_url: Some(database_url),
            data_dir,
            files_dir: None,
            addr: "127.0.0.1:0".parse().expect("a valid address"),
            now: None,
            tick_seconds: 0,
            time_zone: "Asia/Shanghai".into(),
            pool_size: 4,
            public_url: None,
            session_idle_minutes: 30,
            session_max_hours: 12,
            overview_cache_seconds: 10,
            log_format: "text".into(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password: never print it.
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("addr", &self.addr)
            .field("now", &self.now)
            .field("tick_seconds", &self.tick_seconds)
            .field("time_zone", &self.time_zone)
            .field("pool_size", &self.pool_size)
            .field("public_url", &self.public_url)
            .field("overview_cache_seconds", &self.overview_cache_seconds)
            .finish_non_exhaustive()
    }
}

pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|e| format!("expected an RFC 3339 instant such as 2026-03-26T16:00:00+08:00: {e}"))
}

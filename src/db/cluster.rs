//! The private PostgreSQL cluster used when no DATABASE_URL is given.
//!
//! Layout of the data directory (`ZRZ_DATA_DIR`, default `./zerenzhi-data`):
//!
//! * `<data_dir>/pg` — the PGDATA of the cluster (initdb'd on first use);
//! * `<data_dir>/pg.log` — the server's log;
//! * `<data_dir>/.lock` — flock'ed while a process attaches to or starts the cluster;
//! * `<data_dir>/.s.PGSQL.5432` — the server's unix socket, unless that path would be too
//!   long for a unix socket, in which case it lives in `/tmp/zrz-<hash of data_dir>/`.
//!
//! The server listens only on its unix socket (no TCP) with `trust` authentication; the
//! socket is only accessible to the server's OS user (and root).  PostgreSQL refuses to
//! run as root, so when this process runs as root the server runs as the `postgres`
//! system user.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The PostgreSQL role (superuser) created by initdb and used by the portal.
const PG_USER: &str = "zerenzhi";
/// Port number of the cluster; it only names the socket file, TCP is off.
const PG_PORT: u16 = 5432;
/// Longest socket path we accept (the kernel's limit is 107 bytes plus NUL).
const MAX_SOCKET_PATH: usize = 100;
/// The OS user the server runs as when this process runs as root.
const SERVER_OS_USER: &str = "postgres";
/// Configuration file, rewritten before every start, included from postgresql.conf.
const CONF_FILE: &str = "zerenzhi.conf";
/// How long to wait for the server to start, stop or accept connections.
const TIMEOUT_SECS: u64 = 60;

/// A PostgreSQL cluster in a data directory of the portal's own, running (or attached to)
/// for the lifetime of this value.
///
/// Call [`LocalCluster::stop`] when done. If a value that started the server is dropped
/// without `stop()`, the server is stopped synchronously as a fallback.
pub struct LocalCluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    log_path: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    server_user: Option<ServerUser>,
    started_here: bool,
}

/// The OS user the server processes run as (only set when we are root).
#[derive(Clone, Debug)]
struct ServerUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl LocalCluster {
    /// Attach to the cluster in `data_dir` if its postmaster runs, else initdb it (first time) and start it.
    /// Ensures a database named `database` exists. Remembers whether it started the server itself.
    pub async fn attach_or_start(data_dir: &Path, database: &str) -> Result<LocalCluster> {
        validate_database_name(database)?;
        fs::create_dir_all(data_dir).with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let data_dir = fs::canonicalize(data_dir)
            .with_context(|| format!("cannot resolve data directory {}", data_dir.display()))?;
        let pgdata = data_dir.join("pg");

        // SAFETY: geteuid has no preconditions and cannot fail.
        let server_user = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user(SERVER_OS_USER)?.ok_or_else(|| {
                anyhow!(
                    "running as root, but PostgreSQL refuses to run as root and there is no \
                     `{SERVER_OS_USER}` system user to run it as; install the PostgreSQL \
                     server package (e.g. `apt-get install -y postgresql`), create that user, \
                     run the portal as an ordinary user, or set DATABASE_URL"
                )
            })?)
        } else {
            None
        };

        let _lock = DirLock::acquire(&data_dir.join(".lock")).await?;

        let existing_major = fs::read_to_string(pgdata.join("PG_VERSION")).ok().map(|v| v.trim().to_owned());
        let bindir = find_bindir(existing_major.as_deref()).await?;

        let mut cluster = LocalCluster {
            socket_dir: socket_dir_for(&data_dir),
            log_path: data_dir.join("pg.log"),
            pgdata,
            data_dir,
            port: PG_PORT,
            bindir,
            server_user,
            started_here: false,
        };
        cluster.check_reachable().await?;

        if cluster.attach_running().await? {
            tracing::info!(
                data_dir = %cluster.data_dir.display(),
                socket_dir = %cluster.socket_dir.display(),
                "attached to the running private PostgreSQL cluster"
            );
        } else {
            cluster.prepare_dirs()?;
            if !cluster.pgdata.join("PG_VERSION").exists() {
                cluster.initdb().await?;
            }
            cluster.write_conf()?;
            cluster.start().await?;
        }

        if let Err(e) = cluster.ensure_database(database).await {
            if cluster.started_here
                && let Err(stop_err) = cluster.stop_server().await
            {
                tracing::warn!(error = %format!("{stop_err:#}"), "could not stop the server again");
            }
            cluster.started_here = false;
            return Err(e);
        }
        Ok(cluster)
    }

    /// A sqlx-compatible URL for `database` over the unix socket, e.g.
    /// `postgres:///zerenzhi?user=zerenzhi&host=/abs/socketdir&port=5432&sslmode=disable`.
    ///
    /// (sqlx rejects `postgres://zerenzhi@/…`, a user with an empty host, so the user is
    /// a query parameter.) The port (it names the socket file) and `sslmode=disable` are
    /// explicit so that `PGPORT`/`PGSSLMODE` in the environment cannot redirect it.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres:///{}?user={PG_USER}&host={}&port={}&sslmode=disable",
            percent_encode(database.as_bytes()),
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port
        )
    }

    /// Whether this process started the postmaster (and so must stop it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stop the postmaster (pg_ctl stop -m fast, wait) if this process started it; otherwise do nothing.
    pub async fn stop(mut self) -> Result<()> {
        if !self.started_here {
            tracing::debug!(
                data_dir = %self.data_dir.display(),
                "leaving the private PostgreSQL cluster running (not started here)"
            );
            return Ok(());
        }
        // Whatever happens now, Drop must not try again.
        self.started_here = false;
        // Don't stop in the middle of another process's attach; but stop in any case.
        let _lock = match DirLock::acquire(&self.data_dir.join(".lock")).await {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "stopping without the lock");
                None
            }
        };
        self.stop_server().await
    }

    /// Keep the server running after this process exits (`zerenzhi cluster start`).
    pub fn leave_running(mut self) {
        self.started_here = false;
    }

    /// Stop the server whoever started it (`zerenzhi cluster stop`).
    pub async fn stop_regardless(mut self) -> Result<()> {
        self.started_here = true;
        self.stop().await
    }

    // ---- internals -------------------------------------------------------------------

    async fn stop_server(&self) -> Result<()> {
        tracing::info!(data_dir = %self.data_dir.display(), "stopping the private PostgreSQL cluster");
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(["stop", "-m", "fast", "-w", "-t"]).arg(TIMEOUT_SECS.to_string()).arg("-D").arg(&self.pgdata);
        let output = run(cmd).await.with_context(|| format!("cannot run pg_ctl stop for {}", self.pgdata.display()))?;
        if !output.status.success() {
            bail!("pg_ctl stop failed for {}: {}{}", self.pgdata.display(), output_text(&output), self.log_hint());
        }
        for _ in 0..40 {
            if self.remove_private_socket_dir() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// Try to remove the `/tmp/zrz-…` socket directory once the server is gone; false if
    /// it still holds files, which is worth a retry: the postmaster may remove its socket
    /// files just after postmaster.pid, which is what `pg_ctl stop -w` waits for.
    fn remove_private_socket_dir(&self) -> bool {
        if self.socket_dir == self.data_dir || !self.socket_dir.starts_with("/tmp") {
            return true;
        }
        !matches!(
            fs::remove_dir(&self.socket_dir),
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty
        )
    }

    /// A command for one of the server binaries, run as the server's OS user.
    fn pg_command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bindir.join(program));
        // The children must not depend on (or be confused by) our cwd or environment.
        cmd.current_dir("/").stdin(Stdio::null());
        for var in ["PGDATA", "PGPORT", "PGHOST", "PGHOSTADDR", "PGUSER", "PGDATABASE", "PGOPTIONS", "PGSSLMODE"] {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.server_user {
            cmd.uid(user.uid).gid(user.gid).env("HOME", &user.home).env("USER", &user.name).env("LOGNAME", &user.name);
        }
        cmd
    }

    /// Root only: fail early with a helpful message if the server user cannot reach the
    /// data directory (e.g. because it is under /root, mode 0700).
    async fn check_reachable(&self) -> Result<()> {
        let Some(user) = &self.server_user else {
            return Ok(());
        };
        // `test -x parent` needs search permission on every ancestor too; the data
        // directory itself is checked after `prepare_dirs` adjusted it.
        let parent = self.data_dir.parent().unwrap_or(Path::new("/"));
        if !self.user_can_search(parent).await? {
            bail!(
                "the `{name}` system user (PostgreSQL refuses to run as root, so the private \
                 server runs as `{name}`) cannot reach the data directory {dir}: {parent} or one \
                 of its parents is not searchable by it (e.g. /root has mode 0700). Use a data \
                 directory it can reach, e.g. ZRZ_DATA_DIR=/var/lib/zerenzhi, or grant access \
                 (chmod o+x on the directories on the way), or set DATABASE_URL",
                name = user.name,
                dir = self.data_dir.display(),
                parent = parent.display(),
            );
        }
        Ok(())
    }

    /// Whether the server user may search (traverse) `dir`, tested as that user.
    async fn user_can_search(&self, dir: &Path) -> Result<bool> {
        let mut cmd = std::process::Command::new("test");
        cmd.arg("-x").arg(dir).current_dir("/").stdin(Stdio::null());
        if let Some(user) = &self.server_user {
            cmd.uid(user.uid).gid(user.gid);
        }
        let output = run(cmd).await.context("cannot run `test` to check directory permissions")?;
        Ok(output.status.success())
    }

    /// Create PGDATA, the socket directory and the log file with the right owners, and
    /// choose the socket directory.
    fn prepare_dirs(&mut self) -> Result<()> {
        let owner = self.server_user.as_ref().map(|u| (u.uid, u.gid));
        if !self.pgdata.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.pgdata)
                .with_context(|| format!("cannot create {}", self.pgdata.display()))?;
        }
        if let Some((uid, gid)) = owner {
            chown(&self.pgdata, uid, gid)?;
        }

        self.socket_dir = socket_dir_for(&self.data_dir);
        if self.socket_dir == self.data_dir
            && let Some((uid, gid)) = owner
        {
            // The server creates its socket (and socket lock file) here, so it must own the
            // directory. Hand it over only if it is ours alone: never chown a directory
            // like /srv that happens to be named as the data directory.
            let meta =
                fs::metadata(&self.data_dir).with_context(|| format!("cannot inspect {}", self.data_dir.display()))?;
            if meta.uid() == uid {
                // Handed over before.
            } else if holds_only_our_files(&self.data_dir)? {
                chown(&self.data_dir, uid, gid)?;
            } else {
                self.socket_dir = short_socket_dir(&self.data_dir);
                tracing::info!(
                    data_dir = %self.data_dir.display(),
                    socket_dir = %self.socket_dir.display(),
                    "the data directory holds other files, so it is not handed to the server \
                     user; its socket goes elsewhere"
                );
            }
        }
        if self.socket_dir != self.data_dir {
            self.prepare_private_socket_dir()?;
        }

        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_path)
            .with_context(|| format!("cannot create server log {}", self.log_path.display()))?;
        if let Some((uid, gid)) = owner {
            chown(&self.log_path, uid, gid)?;
        }
        Ok(())
    }

    /// The `/tmp/zrz-…` socket directory: a real directory, mode 0700, owned by the server user.
    fn prepare_private_socket_dir(&self) -> Result<()> {
        let dir = &self.socket_dir;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let my_uid = unsafe { libc::geteuid() };
        let server_uid = self.server_user.as_ref().map_or(my_uid, |u| u.uid);
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create socket directory {}", dir.display()));
            }
        }
        let meta =
            fs::symlink_metadata(dir).with_context(|| format!("cannot inspect socket directory {}", dir.display()))?;
        if !meta.file_type().is_dir() {
            bail!("socket directory {} exists but is not a directory; remove it", dir.display());
        }
        if meta.uid() != server_uid && meta.uid() != my_uid {
            bail!("socket directory {} belongs to another user (uid {}); remove it", dir.display(), meta.uid());
        }
        if let Some(user) = &self.server_user {
            chown(dir, user.uid, user.gid)?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod socket directory {}", dir.display()))?;
        Ok(())
    }

    async fn initdb(&self) -> Result<()> {
        if let Some(user) = &self.server_user
            && !self.user_can_search(&self.data_dir).await?
        {
            bail!(
                "the `{}` system user cannot reach the data directory {}; make it searchable \
                 (chmod o+x) or use another one, e.g. ZRZ_DATA_DIR=/var/lib/zerenzhi",
                user.name,
                self.data_dir.display()
            );
        }
        tracing::info!(
            data_dir = %self.data_dir.display(),
            "creating the private PostgreSQL cluster (initdb)"
        );
        let first = self.run_initdb("C.UTF-8").await?;
        if !first.status.success() {
            tracing::warn!("initdb with --locale=C.UTF-8 failed, retrying with --locale=C");
            let second = self.run_initdb("C").await?;
            if !second.status.success() {
                bail!(
                    "initdb failed for {} (with --locale=C.UTF-8: {}; with --locale=C: {})",
                    self.pgdata.display(),
                    output_text(&first),
                    output_text(&second)
                );
            }
        }
        Ok(())
    }

    async fn run_initdb(&self, locale: &str) -> Result<Output> {
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .args(["--auth=trust", "--encoding=UTF8"])
            .arg(format!("--username={PG_USER}"))
            .arg(format!("--locale={locale}"));
        let output = run(cmd).await.with_context(|| format!("cannot run initdb for {}", self.pgdata.display()))?;
        tracing::debug!(locale, output = %output_text(&output), "initdb finished");
        Ok(output)
    }

    /// Once (checked at every start, so an interrupted first start is repaired): our
    /// settings at the end of postgresql.conf, and the include of the file with the
    /// connection settings (rewritten at every start).
    fn ensure_base_conf(&self) -> Result<()> {
        let path = self.pgdata.join("postgresql.conf");
        let include = format!("include = '{CONF_FILE}'");
        let current = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if current.lines().any(|line| line.trim() == include) {
            return Ok(());
        }
        let block = format!(
            "\n# ---- added by zerenzhi ----\n\
             max_connections = 100\n\
             shared_buffers = 128MB\n\
             fsync = on\n\
             # listen_addresses, port and unix_socket_directories are (re)written\n\
             # into {CONF_FILE} by zerenzhi at every start.\n\
             {include}\n"
        );
        let mut file =
            OpenOptions::new().append(true).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        io::Write::write_all(&mut file, block.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// (Re)write the connection settings; the socket directory depends on where the data
    /// directory is, which may have moved since initdb.
    fn write_conf(&self) -> Result<()> {
        self.ensure_base_conf()?;
        let path = self.pgdata.join(CONF_FILE);
        let conf = format!(
            "# Written by zerenzhi before every start of the server; changes are lost.\n\
             listen_addresses = ''\n\
             port = {}\n\
             unix_socket_directories = {}\n\
             unix_socket_permissions = 0700\n",
            self.port,
            socket_dirs_setting(&self.socket_dir)?
        );
        fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(user) = &self.server_user {
            chown(&path, user.uid, user.gid)?;
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<()> {
        tracing::info!(
            data_dir = %self.data_dir.display(),
            socket_dir = %self.socket_dir.display(),
            "starting the private PostgreSQL cluster"
        );
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(["start", "-w", "-t"])
            .arg(TIMEOUT_SECS.to_string())
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(&self.log_path)
            // Keep Ctrl-C in our terminal away from the postmaster: we stop it ourselves.
            .process_group(0);
        let output =
            run(cmd).await.with_context(|| format!("cannot run pg_ctl start for {}", self.pgdata.display()))?;
        if !output.status.success() {
            bail!(
                "the private PostgreSQL server in {} did not start: {}{}",
                self.pgdata.display(),
                output_text(&output),
                self.log_hint()
            );
        }
        self.started_here = true;
        Ok(())
    }

    /// Attach to the postmaster named in postmaster.pid if it is alive: wait until it
    /// accepts connections (it may be starting) and take its socket directory and port.
    /// `Ok(false)` if no postmaster runs; a stale postmaster.pid is removed.
    async fn attach_running(&mut self) -> Result<bool> {
        let pid_path = self.pgdata.join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
        let mut last_error = String::from("postmaster.pid is incomplete");
        loop {
            let text = match fs::read_to_string(&pid_path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", pid_path.display()));
                }
            };
            let info = PidFile::parse(&text);
            // No pid: being written right now (or garbage), look again below.
            if let Some(pid) = info.pid
                && postmaster_alive(pid, &self.pgdata) == Liveness::Gone
            {
                tracing::info!(
                    pid,
                    path = %pid_path.display(),
                    "removing stale postmaster.pid (no postmaster of this cluster has that pid)"
                );
                match fs::remove_file(&pid_path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot remove stale {}", pid_path.display()));
                    }
                }
                return Ok(false);
            }
            if let (Some(socket_dir), Some(port)) = (info.socket_dir, info.port) {
                self.socket_dir = socket_dir;
                self.port = port;
                match PgConnection::connect_with(&self.connect_options("postgres")?).await {
                    Ok(conn) => {
                        let _ = conn.close().await;
                        return Ok(true);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "server not accepting connections yet");
                        last_error = e.to_string();
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "a postmaster runs for {} (see {}) but does not accept connections on {}: \
                     {last_error}{}",
                    self.pgdata.display(),
                    pid_path.display(),
                    self.socket_dir.display(),
                    self.log_hint()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn connect_options(&self, database: &str) -> Result<PgConnectOptions> {
        self.database_url(database)
            .parse::<PgConnectOptions>()
            .with_context(|| format!("bad connection URL {}", self.database_url(database)))
    }

    async fn ensure_database(&self, database: &str) -> Result<()> {
        let context = || {
            format!(
                "cannot create database `{database}` in the private PostgreSQL cluster {}{}",
                self.pgdata.display(),
                self.log_hint()
            )
        };
        let options = self.connect_options("postgres")?;
        let mut conn = PgConnection::connect_with(&options).await.with_context(context)?;
        let exists: Option<i32> = sqlx::query_scalar("select 1 from pg_database where datname = $1")
            .bind(database)
            .fetch_optional(&mut conn)
            .await
            .with_context(context)?;
        if exists.is_none() {
            tracing::info!(database, "creating database");
            // The name was validated as [a-z0-9_]+, so quoting it is enough.
            let sql = format!("CREATE DATABASE \"{database}\"");
            match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
                Ok(_) => {}
                // Created concurrently by someone not holding our lock: fine.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e).with_context(context),
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// "; server log: <path>" plus its last lines, for error messages.
    fn log_hint(&self) -> String {
        let tail = fs::read_to_string(&self.log_path)
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .unwrap_or_default();
        if tail.is_empty() {
            format!("; server log: {}", self.log_path.display())
        } else {
            format!("; server log: {}, ending with:\n{tail}", self.log_path.display())
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.started_here {
            return;
        }
        tracing::warn!(
            data_dir = %self.data_dir.display(),
            "LocalCluster dropped without stop(); stopping the server now"
        );
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(["stop", "-m", "fast", "-w", "-D"]).arg(&self.pgdata).stdout(Stdio::null()).stderr(Stdio::null());
        match cmd.status() {
            Ok(status) if status.success() => {
                for _ in 0..40 {
                    if self.remove_private_socket_dir() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
            Ok(status) => tracing::warn!(%status, "pg_ctl stop failed"),
            Err(e) => tracing::warn!(error = %e, "cannot run pg_ctl stop"),
        }
    }
}

/// What postmaster.pid says: pid (line 1), port (line 4), first socket directory (line 5).
#[derive(Debug, Default, PartialEq)]
struct PidFile {
    pid: Option<i32>,
    port: Option<u16>,
    socket_dir: Option<PathBuf>,
}

impl PidFile {
    fn parse(text: &str) -> PidFile {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        PidFile {
            pid: lines.first().and_then(|l| l.parse().ok()).filter(|&p| p > 0),
            port: lines.get(3).and_then(|l| l.parse().ok()),
            socket_dir: lines.get(4).filter(|l| !l.is_empty()).map(PathBuf::from),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Liveness {
    /// A live process whose working directory is PGDATA (a postmaster chdirs there).
    Alive,
    /// No such process, a zombie, or a live process that is not this cluster's postmaster.
    Gone,
    /// The process exists but we may not look at it.
    Unknown,
}

/// Whether `pid` is a live postmaster of `pgdata`. Unlike `pg_ctl status` (which only
/// checks that the pid exists), this sees through reused pids and unreaped zombies.
fn postmaster_alive(pid: i32, pgdata: &Path) -> Liveness {
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) if cwd == pgdata => Liveness::Alive,
        Ok(_) => Liveness::Gone,
        Err(e) if e.kind() == ErrorKind::NotFound => Liveness::Gone,
        Err(_) => {
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let rc = unsafe { libc::kill(pid, 0) };
            if rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
                Liveness::Unknown
            } else {
                Liveness::Gone
            }
        }
    }
}

/// An exclusive flock on a file, released when dropped (the file is closed).
struct DirLock {
    _file: File,
}

impl DirLock {
    async fn acquire(path: &Path) -> Result<DirLock> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot open lock file {}", path.display()))?;
            loop {
                // SAFETY: the fd is valid for as long as `file` lives.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                    return Ok(DirLock { _file: file });
                }
                let err = io::Error::last_os_error();
                if err.kind() != ErrorKind::Interrupted {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        })
        .await
        .context("lock task failed")?
    }
}

/// Run a command to completion, capturing its output.
async fn run(cmd: std::process::Command) -> io::Result<Output> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().await
}

/// A command's stderr and stdout, trimmed, for messages.
fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stdout = stdout.trim();
    if !stdout.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stdout);
    }
    if text.is_empty() {
        text = format!("exited with {}", output.status);
    }
    text
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {} to uid {uid}", path.display()))
}

/// Whether `dir` holds nothing but what this module puts there.
fn holds_only_our_files(dir: &Path) -> Result<bool> {
    const OURS: [&str; 5] = ["pg", "pg.log", ".lock", ".s.PGSQL.5432", ".s.PGSQL.5432.lock"];
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if !OURS.iter().any(|ours| entry.file_name() == *ours) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// CREATE DATABASE cannot take a bind parameter, so the name must be harmless.
fn validate_database_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        bail!("invalid database name {name:?}: use 1 to 63 characters of [a-z0-9_]");
    }
    Ok(())
}

/// Where the server's socket goes: the data directory itself if the socket path fits,
/// else `/tmp/zrz-<12 hex digits of SHA-256 of the data directory path>`.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let socket_name = format!(".s.PGSQL.{PG_PORT}");
    if data_dir.as_os_str().len() + 1 + socket_name.len() <= MAX_SOCKET_PATH {
        data_dir.to_path_buf()
    } else {
        short_socket_dir(data_dir)
    }
}

/// `/tmp/zrz-<12 hex digits of SHA-256 of the data directory path>`.
fn short_socket_dir(data_dir: &Path) -> PathBuf {
    let digest = Sha256::digest(data_dir.as_os_str().as_bytes());
    let hash = hex::encode(digest);
    PathBuf::from(format!("/tmp/zrz-{}", &hash[..12]))
}

/// The value of `unix_socket_directories` for one directory, as a postgresql.conf string
/// literal: the path double-quoted (list syntax), then single-quoted (conf syntax).
fn socket_dirs_setting(dir: &Path) -> Result<String> {
    let path = dir
        .to_str()
        .filter(|p| !p.contains(['\n', '\r']))
        .ok_or_else(|| anyhow!("unusable socket directory path {}", dir.display()))?;
    let listed = format!("\"{}\"", path.replace('"', "\"\""));
    Ok(format!("'{}'", listed.replace('\\', "\\\\").replace('\'', "''")))
}

/// Percent-encode everything but unreserved characters and `/`.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Look up an OS user by name; `Ok(None)` if there is no such user.
fn lookup_user(name: &str) -> Result<Option<ServerUser>> {
    let c_name = std::ffi::CString::new(name).context("user name contains NUL")?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid; `buf` outlives the use of `pwd`'s string fields.
        let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc)).with_context(|| format!("cannot look up the `{name}` user"));
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            // SAFETY: getpwnam_r succeeded, so pw_dir points to a NUL-terminated string in `buf`.
            let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
        };
        return Ok(Some(ServerUser { name: name.to_owned(), uid: pwd.pw_uid, gid: pwd.pw_gid, home }));
    }
}

/// Directory holding initdb, pg_ctl and postgres: `pg_config --bindir`, then
/// `/usr/lib/postgresql/*/bin` (the existing cluster's major version first, then the
/// highest version), then PATH.
async fn find_bindir(existing_major: Option<&str>) -> Result<PathBuf> {
    let debian_root = Path::new("/usr/lib/postgresql");
    if let Some(major) = existing_major {
        let dir = debian_root.join(major).join("bin");
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }

    if let Ok(output) = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        && output.status.success()
    {
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(output.stdout.trim_ascii()));
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }

    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version =
                name.to_str()?.split('.').map(|part| part.parse::<u32>().ok()).collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    if let Some((_, dir)) = versions.into_iter().find(|(_, dir)| has_server_binaries(dir)) {
        return Ok(dir);
    }

    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| has_server_binaries(dir))
    {
        return Ok(dir);
    }

    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found (looked at \
         `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH). Without DATABASE_URL the \
         portal runs its own PostgreSQL server: install it (on Debian/Ubuntu: \
         `apt-get install -y postgresql`, or run scripts/ensure-postgres.sh), or set \
         DATABASE_URL to use an existing server"
    )
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|name| {
        fs::metadata(dir.join(name)).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    /// A fresh directory under /tmp that the `postgres` user can traverse when we are root.
    fn temp_dir() -> tempfile::TempDir {
        let dir = tempfile::Builder::new().prefix("zrz-test-").tempdir_in("/tmp").expect("create temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        dir
    }

    async fn system_identifier(pool: &PgPool) -> i64 {
        sqlx::query_scalar("select system_identifier from pg_control_system()")
            .fetch_one(pool)
            .await
            .expect("system identifier")
    }

    #[tokio::test]
    async fn start_reuse_attach_and_stop() {
        let tmp = temp_dir();
        let data_dir = tmp.path().join("data");

        // First start: initdb, start, create database.
        let cluster = LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("first start");
        assert!(cluster.started_here());
        let url = cluster.database_url("zerenzhi");
        assert!(url.starts_with("postgres:///zerenzhi?user=zerenzhi&host=/tmp/zrz-test-"), "{url}");
        assert!(data_dir.join("pg/PG_VERSION").exists());
        assert!(data_dir.join("pg.log").exists());
        assert!(data_dir.join(".s.PGSQL.5432").exists(), "socket in the data dir");
        let pool = PgPool::connect(&url).await.expect("connect");
        let sysid = system_identifier(&pool).await;
        sqlx::query("create table t (id int primary key, name text not null)")
            .execute(&pool)
            .await
            .expect("create table");
        sqlx::query("insert into t values (1, 'eins')").execute(&pool).await.expect("insert");
        let fsync: String = sqlx::query_scalar("show fsync").fetch_one(&pool).await.expect("show fsync");
        assert_eq!(fsync, "on");
        let listen: String =
            sqlx::query_scalar("show listen_addresses").fetch_one(&pool).await.expect("show listen_addresses");
        assert_eq!(listen, "");
        pool.close().await;
        cluster.stop().await.expect("first stop");
        assert!(!data_dir.join("pg/postmaster.pid").exists(), "server stopped");

        // Second start: same cluster (no second initdb), data still there.
        let cluster = LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("second start");
        assert!(cluster.started_here());
        let pool = PgPool::connect(&cluster.database_url("zerenzhi")).await.expect("connect again");
        assert_eq!(system_identifier(&pool).await, sysid, "initdb ran twice");
        let name: String = sqlx::query_scalar("select name from t where id = 1")
            .fetch_one(&pool)
            .await
            .expect("row survives a restart");
        assert_eq!(name, "eins");

        // A second user of the same directory attaches, and its stop() leaves the server up.
        let attached = LocalCluster::attach_or_start(&data_dir, "other_db").await.expect("attach");
        assert!(!attached.started_here());
        assert_eq!(attached.database_url("zerenzhi"), cluster.database_url("zerenzhi"));
        let other = PgPool::connect(&attached.database_url("other_db"))
            .await
            .expect("connect to the database created on attach");
        other.close().await;
        attached.stop().await.expect("stop of an attached cluster");
        let one: i32 = sqlx::query_scalar("select 1")
            .fetch_one(&pool)
            .await
            .expect("server still running after the attached stop()");
        assert_eq!(one, 1);
        pool.close().await;

        cluster.stop().await.expect("final stop");
        assert!(!data_dir.join("pg/postmaster.pid").exists(), "server stopped");
    }

    #[tokio::test]
    async fn concurrent_starters_share_one_server() {
        let tmp = temp_dir();
        let data_dir = tmp.path().join("data");
        let (a, b) = tokio::join!(
            LocalCluster::attach_or_start(&data_dir, "zerenzhi"),
            LocalCluster::attach_or_start(&data_dir, "zerenzhi"),
        );
        let (a, b) = (a.expect("starter a"), b.expect("starter b"));
        assert!(a.started_here() != b.started_here(), "exactly one starts the server");
        let (starter, attached) = if a.started_here() { (a, b) } else { (b, a) };
        attached.stop().await.expect("stop attached");
        starter.stop().await.expect("stop starter");
    }

    #[tokio::test]
    async fn long_data_dir_puts_socket_in_tmp() {
        let tmp = temp_dir();
        let data_dir = tmp
            .path()
            .join("a-rather-long-directory-name-for-the-portal")
            .join("and-another-one-to-pass-the-socket-limit")
            .join("data");
        let canonical_len = fs::canonicalize(tmp.path()).expect("canonical").as_os_str().len()
            + data_dir.as_os_str().len()
            - tmp.path().as_os_str().len();
        assert!(canonical_len + "/.s.PGSQL.5432".len() > MAX_SOCKET_PATH);

        let cluster = LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("start with a long path");
        let socket_dir = cluster.socket_dir.clone();
        assert!(socket_dir.starts_with("/tmp"), "{}", socket_dir.display());
        assert!(socket_dir.to_str().is_some_and(|s| s.starts_with("/tmp/zrz-") && s.len() == "/tmp/zrz-".len() + 12));
        assert!(socket_dir.join(".s.PGSQL.5432").exists());
        let mode = fs::metadata(&socket_dir).expect("socket dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        let pool = PgPool::connect(&cluster.database_url("zerenzhi")).await.expect("connect over the /tmp socket");
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&pool).await.expect("query");
        assert_eq!(one, 1);
        pool.close().await;
        cluster.stop().await.expect("stop");
        assert!(!socket_dir.exists(), "socket dir removed after stop");
    }

    #[tokio::test]
    async fn unreachable_data_dir_fails_clearly_as_root() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root runs the server as another user
        }
        let tmp = temp_dir();
        let private = tmp.path().join("private");
        fs::DirBuilder::new().mode(0o700).create(&private).expect("private dir");
        let data_dir = private.join("data");
        let err = match LocalCluster::attach_or_start(&data_dir, "zerenzhi").await {
            Ok(cluster) => {
                let _ = cluster.stop().await;
                panic!("started although `postgres` cannot reach {}", data_dir.display());
            }
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("ZRZ_DATA_DIR="), "{err}");
        assert!(err.contains(&*data_dir.to_string_lossy()), "{err}");
        assert!(!data_dir.join("pg").exists(), "nothing initdb'd");
    }

    #[tokio::test]
    async fn stale_pid_file_is_ignored() {
        let tmp = temp_dir();
        let data_dir = tmp.path().join("data");
        let cluster = LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("first start");
        let pid_path = data_dir.join("pg/postmaster.pid");
        let live_pid_file = fs::read_to_string(&pid_path).expect("pid file");
        let info = PidFile::parse(&live_pid_file);
        let pid = info.pid.expect("pid");
        assert_eq!(postmaster_alive(pid, &fs::canonicalize(data_dir.join("pg")).expect("pgdata")), Liveness::Alive);
        assert_eq!(info.port, Some(5432));
        cluster.stop().await.expect("stop");

        // As if the machine had crashed: postmaster.pid names a pid that is now used by
        // another process (ourselves), which `pg_ctl status` would take for a live server.
        let stale = live_pid_file.replacen(&pid.to_string(), &std::process::id().to_string(), 1);
        fs::write(&pid_path, stale).expect("write stale pid file");
        let cluster =
            LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("start despite a stale pid file");
        assert!(cluster.started_here());
        cluster.stop().await.expect("stop again");
    }

    #[tokio::test]
    async fn shared_data_dir_is_not_handed_to_the_server_user() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root runs the server as another user
        }
        let tmp = temp_dir();
        let data_dir = tmp.path().join("data");
        fs::create_dir_all(data_dir.join("uploads")).expect("other files");
        let cluster = LocalCluster::attach_or_start(&data_dir, "zerenzhi").await.expect("start");
        let socket_dir = cluster.socket_dir.clone();
        assert!(socket_dir.to_string_lossy().starts_with("/tmp/zrz-"), "{}", socket_dir.display());
        assert_eq!(fs::metadata(&data_dir).expect("data dir").uid(), 0);
        let pool = PgPool::connect(&cluster.database_url("zerenzhi")).await.expect("connect");
        pool.close().await;
        cluster.stop().await.expect("stop");
        assert!(!socket_dir.exists(), "socket dir removed after stop");
    }

    #[test]
    fn database_names_are_validated() {
        assert!(validate_database_name("zerenzhi_test1").is_ok());
        for bad in ["", "Zerenzhi", "a\"b", "a b", "x;drop", &"a".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn socket_dir_choice_and_quoting() {
        let short = Path::new("/srv/zerenzhi-data");
        assert_eq!(socket_dir_for(short), short);
        let long = PathBuf::from(format!("/srv/{}", "x".repeat(90)));
        let dir = socket_dir_for(&long);
        assert_eq!(dir, socket_dir_for(&long), "stable");
        assert_ne!(dir, socket_dir_for(short));
        assert_eq!(socket_dirs_setting(Path::new("/a b/it's \"q\"")).expect("setting"), r#"'"/a b/it''s ""q"""'"#);
        assert_eq!(percent_encode(b"/a b/c+d"), "/a%20b/c%2Bd");
    }
}

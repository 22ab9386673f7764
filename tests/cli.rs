//! The `zerenzhi` binary (DESIGN.md section 4 "Command line"): the private cluster
//! started and stopped around commands, `serve` answering and shutting down cleanly on
//! SIGTERM, commands attaching to a running cluster, and the commands run against a
//! `DATABASE_URL`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_database, instant, url_for};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_zerenzhi");
const PASSWORD: &str = "a-long-and-unusual-passphrase\n";

/// A fresh directory under /tmp that the `postgres` user can traverse (the tests run as
/// root, and the private cluster then runs as `postgres`).
fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("zrz-cli-").tempdir_in("/tmp").expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    dir
}

/// The binary with a clean environment for the portal's own variables.
fn zerenzhi(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("ZRZ_NOW")
        .env_remove("ZRZ_ADDR")
        .env_remove("ZRZ_DATA_DIR")
        .env_remove("ZRZ_FILES_DIR")
        .env_remove("ZRZ_TICK_SECONDS")
        .env("ZRZ_LOG", "info,sqlx=warn")
        .kill_on_drop(true);
    cmd
}

/// Without DATABASE_URL: the private cluster in `data_dir`.
fn private(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = zerenzhi(args);
    cmd.env("ZRZ_DATA_DIR", data_dir);
    cmd
}

/// Run a command to its end (within `limit`), feeding `stdin`.
async fn run(mut cmd: Command, stdin: Option<&str>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn zerenzhi");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.expect("wait for zerenzhi"),
        Err(_) => panic!("zerenzhi did not finish within {limit:?}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The token `token create` printed: the last word of its last line.
fn printed_token(out: &Output) -> String {
    let s = stdout(out);
    let line = s.lines().last().unwrap_or_else(|| panic!("no output: {}", text(out)));
    line.split_whitespace().last().expect("a token").to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().unwrap().port()
}

fn postmaster_runs(data_dir: &Path) -> bool {
    data_dir.join("pg/postmaster.pid").exists()
}

/// Stops the private cluster of a data directory when dropped, unless disarmed: a failing
/// test leaves no PostgreSQL running.
struct ClusterGuard {
    data_dir: PathBuf,
    armed: bool,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if self.armed && postmaster_runs(&self.data_dir) {
            let _ = std::process::Command::new(BIN)
                .args(["cluster", "stop"])
                .env_remove("DATABASE_URL")
                .env("ZRZ_DATA_DIR", &self.data_dir)
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// A running `zerenzhi serve`, killed when dropped (kill_on_drop) if the test fails.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    async fn start(data_dir: &Path, log: PathBuf) -> Server {
        let port = free_port();
        let mut cmd = private(data_dir, &["serve"]);
        let file = std::fs::File::create(&log).expect("log file");
        cmd.env("ZRZ_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        let child = cmd.spawn().expect("spawn serve");
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
        server.wait_healthy().await;
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("serve exited early with {status}:\n{}", self.log_text());
            }
            if let Ok(resp) = http.get(format!("{}/healthz", self.base)).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("serve did not answer /healthz within 60 s:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then wait for the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("serve is running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}");
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => status.expect("wait for serve"),
            Err(_) => panic!("serve did not exit within 60 s of SIGTERM:\n{}", self.log_text()),
        }
    }
}

async fn me(base: &str, token: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/me");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_database_url_the_commands_start_attach_to_and_stop_the_private_cluster() {
    let tmp = temp_dir();
    let data_dir = tmp.path().join("data");
    let mut guard = ClusterGuard { data_dir: data_dir.clone(), armed: true };

    // A command on its own starts the cluster (initdb the first time) and stops it after.
    let out =
        run(private(&data_dir, &["user", "create", "alice", "--admin"]), Some(PASSWORD), Duration::from_secs(180))
            .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("created user alice (admin)"), "{}", text(&out));
    assert!(data_dir.join("pg/PG_VERSION").exists(), "the cluster was created in the data dir");
    assert!(!postmaster_runs(&data_dir), "the command stopped the cluster it started");

    // `serve` starts it and keeps it; `token create` attaches while it runs.
    let server = Server::start(&data_dir, tmp.path().join("serve-1.log")).await;
    assert!(postmaster_runs(&data_dir));
    let out = run(private(&data_dir, &["token", "create", "alice"]), None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("token for alice:"), "{}", text(&out));
    let token = printed_token(&out);
    assert!(postmaster_runs(&data_dir), "token create left the server's cluster running");
    let (st, body) = me(&server.base, &token).await;
    assert_eq!(st, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["login"], "alice");
    assert_eq!(body["admin"], true);

    // SIGTERM: a clean exit, and the cluster it started is stopped.
    let log = server.log.clone();
    let status = server.terminate().await;
    assert_eq!(
        status.code(),
        Some(0),
        "serve exit status {status}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!postmaster_runs(&data_dir), "serve stopped the cluster on SIGTERM");

    // Again: the user and the token are still there.
    let server = Server::start(&data_dir, tmp.path().join("serve-2.log")).await;
    let (st, body) = me(&server.base, &token).await;
    assert_eq!(st, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["login"], "alice");
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "second serve: {status}");
    assert!(!postmaster_runs(&data_dir));

    let out = run(private(&data_dir, &["cluster", "stop"]), None, Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!postmaster_runs(&data_dir), "cluster stop leaves it stopped");
    guard.armed = false;
}

/// A fresh database with the company tree and template A from 2026-01-01, set up at
/// 2026-02-10 through the library (no scheduler pass has run).
async fn company_database() -> String {
    use zerenzhi::db::orgs::{self, NewOrg};
    let name = fresh_database().await;
    let url = url_for(&name);
    let pool = zerenzhi::db::connect(&url, 2).await.expect("connect");
    let now = instant("2026-02-10T09:00:00+08:00");
    let app = zerenzhi::app::App::new(
        pool.clone(),
        zerenzhi::clock::Clock::frozen_at(now),
        zerenzhi::config::Config::for_tests(url, std::env::temp_dir()),
    )
    .await
    .expect("app");
    let mut tx = pool.begin().await.unwrap();
    for (code, kind, parent) in [
        ("HJT", "group_committee", None),
        ("HGS", "committee", Some("HJT")),
        ("HX-1", "branch", Some("HGS")),
        ("HX-2", "branch", Some("HGS")),
    ] {
        let new = NewOrg {
            code: code.into(),
            name: format!("{code} 组织"),
            kind: kind.into(),
            parent: parent.map(String::from),
            active_from: "2015-01-01".parse().unwrap(),
        };
        orgs::create(&mut tx, new, now).await.expect("create org");
    }
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let template = zerenzhi::domain::templates::find("ideology-company").unwrap();
    zerenzhi::db::rules::install_template(
        &mut tx,
        &app.settings(),
        template,
        "2026-01-01".parse().unwrap(),
        None,
        None,
        now,
    )
    .await
    .expect("install");
    tx.commit().await.unwrap();
    pool.close().await;
    name
}

/// The numbers in `tick`'s summary line, in order.
fn numbers(line: &str) -> Vec<u64> {
    let after = line.split_once(": ").map_or(line, |(_, rest)| rest);
    after.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn with_database_url_tick_audit_user_and_token_commands_work_and_fail_clearly() {
    let tmp = temp_dir();
    let db = company_database().await;
    let url = url_for(&db);
    let cmd = |args: &[&str]| {
        let mut c = zerenzhi(args);
        c.env("DATABASE_URL", &url).env("ZRZ_DATA_DIR", tmp.path());
        c
    };

    // --now wins over ZRZ_NOW.
    let mut tick = cmd(&["tick", "--now", "2026-04-02T00:00:00+08:00"]);
    tick.env("ZRZ_NOW", "2030-01-01T00:00:00+08:00");
    let out = run(tick, None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    let line = stdout(&out).lines().last().unwrap_or_default().to_owned();
    assert!(line.starts_with("tick at 2026-04-02T00:00:00+08:00: "), "{}", text(&out));
    assert!(line.contains("rule periods") && line.contains("overdue notifications"), "{line}");
    let n = numbers(&line);
    assert_eq!(n.len(), 5, "rule periods, duties, due-soon, overdue, sealed: {line}");
    let (rule_periods, duties, due_soon, overdue) = (n[0], n[1], n[2], n[3]);
    assert_eq!(rule_periods, 4, "Q2 of A3, A7, A8 and A11: {line}");
    assert_eq!(duties, 7, "HGS A3 and two branches × (A7, A8, A11): {line}");
    assert_eq!((due_soon, overdue), (0, 7), "Q1 is overdue for the same seven: {line}");
    let pool = zerenzhi::db::connect(&url, 2).await.unwrap();
    let fired: i64 = sqlx::query_scalar("select count(*) from notification_event where kind = 'overdue'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fired, 7);
    let when: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select max(created_at) from notification_event").fetch_one(&pool).await.unwrap();
    assert_eq!(when, instant("2026-04-02T00:00:00+08:00"), "events carry the pass's instant");

    let out = run(cmd(&["audit", "verify"]), None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("audit chain intact"), "{}", text(&out));

    // Users: a good password works; a short or common one fails with a reason.
    let out = run(cmd(&["user", "create", "carol", "--name", "Carol"]), Some(PASSWORD), Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(cmd(&["user", "create", "bob"]), Some("short\n"), Duration::from_secs(60)).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("password") && stderr(&out).contains("8 characters"), "{}", text(&out));
    let out = run(cmd(&["user", "create", "bob"]), Some("password123\n"), Duration::from_secs(60)).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("password") && stderr(&out).contains("common"), "{}", text(&out));
    let out = run(cmd(&["user", "create", "bob"]), Some(""), Duration::from_secs(60)).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("standard input"), "{}", text(&out));
    let bob: i64 =
        sqlx::query_scalar("select count(*) from app_user where login = 'bob'").fetch_one(&pool).await.unwrap();
    assert_eq!(bob, 0, "no user was created by the failed attempts");

    // Tokens: for a known login, printed last on its line; for an unknown one, an error.
    let out = run(cmd(&["token", "create", "carol"]), None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    let token = printed_token(&out);
    assert!(token.starts_with("zrz_"), "{}", text(&out));
    let out = run(cmd(&["token", "create", "nobody"]), None, Duration::from_secs(60)).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("nobody"), "{}", text(&out));

    // The CLI's changes are in the audit log, and the chain verifies after another pass.
    let out = run(cmd(&["tick", "--now", "2026-04-02T00:05:00+08:00"]), None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(numbers(stdout(&out).lines().last().unwrap_or_default())[4] >= 2, "{}", text(&out));
    let out = run(cmd(&["audit", "verify"]), None, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));

    // A tampered log fails verification with a non-zero exit.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("alter table audit_log disable trigger audit_log_no_update").execute(&mut *conn).await.unwrap();
    sqlx::query("update audit_log set actor = 'someone-else' where seal_no = 1").execute(&mut *conn).await.unwrap();
    drop(conn);
    let out = run(cmd(&["audit", "verify"]), None, Duration::from_secs(60)).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("BROKEN"), "{}", text(&out));
    pool.close().await;
}

//! Test harness: each test gets its own database (a copy of a migrated template) and its
//! own server on a free port, with a clock the test controls.
//!
//! The PostgreSQL server comes from `ZRZ_TEST_DATABASE_URL`, else `DATABASE_URL`, else
//! the machine's server at 127.0.0.1:5432 (`scripts/test.sh` starts a private cluster and
//! sets `ZRZ_TEST_DATABASE_URL` when there is none).
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use zerenzhi::app::App;
use zerenzhi::clock::Clock;
use zerenzhi::config::Config;

pub fn server_url() -> String {
    std::env::var("ZRZ_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of another database on the same server.
pub fn url_for(db: &str) -> String {
    let base = server_url();
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let head = match head.rfind('/') {
        Some(i) if i > "postgres://".len() => head[..i].to_owned(),
        _ => head,
    };
    format!("{head}/{db}{query}")
}

const TEMPLATE_LOCK: i64 = 0x7a72_7a74_0001;

/// A fresh, migrated database; returns its name.
pub async fn fresh_database() -> String {
    let mut admin = PgConnection::connect(&server_url()).await.expect("connect to the test PostgreSQL server");
    sqlx::query("select pg_advisory_lock($1)").bind(TEMPLATE_LOCK).execute(&mut admin).await.unwrap();
    let template = format!("zrz_tpl_{}", migrations_fingerprint());
    let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
        .bind(&template)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {template}"))).execute(&mut admin).await.unwrap();
        let pool = PgPool::connect(&url_for(&template)).await.unwrap();
        zerenzhi::db::MIGRATOR.run(&pool).await.expect("migrations apply");
        pool.close().await;
    }
    let name = format!("zrz_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name} template {template}")))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("select pg_advisory_unlock($1)").bind(TEMPLATE_LOCK).execute(&mut admin).await.unwrap();
    name
}

/// A short hash of the migrations, so that a changed schema gets a new template.
fn migrations_fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in zerenzhi::db::MIGRATOR.iter() {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

pub fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("an RFC 3339 instant").to_utc()
}

/// A running portal on its own database.
pub struct TestApp {
    pub base: String,
    pub app: App,
    pub pool: PgPool,
    pub clock: Clock,
    pub db_name: String,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub data_dir: PathBuf,
}

impl TestApp {
    /// A portal whose clock reads `now` (RFC 3339), with an admin user `admin` and a token.
    pub async fn spawn_at(now: &str) -> TestApp {
        let db_name = fresh_database().await;
        let data_dir = std::env::temp_dir().join(&db_name);
        let config = Config::for_tests(url_for(&db_name), data_dir.clone());
        let pool = zerenzhi::db::connect(&url_for(&db_name), 6).await.expect("connect");
        let clock = Clock::frozen_at(instant(now));
        let app = App::new(pool.clone(), clock.clone(), config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(zerenzhi::web::serve(app.clone(), listener, std::future::pending()));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut t = TestApp { base, app, pool, clock, db_name, http, admin_token: String::new(), data_dir };
        t.admin_token = t.user("admin", true).await;
        t
    }

    /// Create a user (password `correct-horse-battery`) and return an API token for them.
    pub async fn user(&self, login: &str, admin: bool) -> String {
        let mut conn = self.pool.acquire().await.unwrap();
        let now = self.clock.now();
        let user = zerenzhi::db::users::create(&mut conn, login, "correct-horse-battery", login, admin, now)
            .await
            .expect("create user");
        zerenzhi::db::users::create_token(&mut conn, user.id, "test", now).await.unwrap()
    }

    pub fn set_now(&self, now: &str) {
        self.clock.set(instant(now));
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.parse().unwrap(), &url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, &self.admin_token.clone(), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, &self.admin_token.clone(), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("PATCH", path, &self.admin_token.clone(), Some(body)).await
    }

    /// Create an organisation through the API; panics unless it is created.
    pub async fn org(&self, code: &str, kind: &str, parent: Option<&str>, active_from: &str) {
        let (st, body) = self
            .post("/api/v1/orgs", json!({"code": code, "name": format!("{code} 组织"), "kind": kind, "parent": parent, "active_from": active_from}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "create {code}: {body}");
    }

    pub async fn install(&self, template: &str, effective_from: &str, root: Option<&str>) {
        let (st, body) = self
            .post(
                &format!("/api/v1/templates/{template}/install"),
                json!({"effective_from": effective_from, "root": root}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "install {template}: {body}");
    }

    /// `{rule: status}` of an organisation's duties for a period.
    pub async fn statuses(&self, org: &str, period: &str) -> Vec<(String, String)> {
        let (st, body) = self.get(&format!("/api/v1/orgs/{org}/duties?period={period}")).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|d| (d["rule"].as_str().unwrap().to_owned(), d["status"].as_str().unwrap().to_owned()))
            .collect()
    }

    pub async fn status_of(&self, org: &str, period: &str, rule: &str) -> String {
        self.statuses(org, period)
            .await
            .into_iter()
            .find(|(r, _)| r == rule)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("{org} owes no {rule} for {period}"))
    }

    /// File a record through the API as the admin; returns its id.
    pub async fn record(&self, org: &str, rule: &str, occurred_on: &str) -> String {
        let (st, body) = self
            .post(
                &format!("/api/v1/orgs/{org}/records"),
                json!({"rule": rule, "occurred_on": occurred_on, "title": format!("{rule} 会议"), "body": "会议纪要", "attendees": ["王五"]}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "record {org} {rule}: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A standard company tree: group HJT → committee HGS → branches HX-1, HX-2.
    pub async fn company_tree(&self) {
        self.org("HJT", "group_committee", None, "2015-01-01").await;
        self.org("HGS", "committee", Some("HJT"), "2016-05-01").await;
        self.org("HX-1", "branch", Some("HGS"), "2017-01-01").await;
        self.org("HX-2", "branch", Some("HGS"), "2017-01-01").await;
    }
}

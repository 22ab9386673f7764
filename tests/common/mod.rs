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

/// The password `TestApp::user` gives everyone.
pub const PASSWORD: &str = "correct-horse-battery";

/// A browser-like client of the pages: it keeps cookies, and knows the session's CSRF token.
pub struct PageClient {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[i..].split('"').next()?.to_owned())
}

impl TestApp {
    /// A fresh cookie-keeping client that has not signed in.
    pub fn anonymous(&self) -> PageClient {
        let http =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        PageClient { http, base: self.base.clone(), csrf: String::new() }
    }

    /// Sign in through the sign-in form, as a person would; panics unless it works.
    pub async fn sign_in(&self, login: &str) -> PageClient {
        let mut c = self.anonymous();
        let (st, html) = c.get("/login").await;
        assert_eq!(st, StatusCode::OK);
        let pre = csrf_of(&html).expect("the sign-in form has a CSRF field");
        let resp = c
            .http
            .post(format!("{}/login", c.base))
            .form(&[("login", login), ("password", PASSWORD), ("csrf", pre.as_str()), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in as {login} failed: {}", resp.text().await.unwrap());
        let (st, html) = c.get("/").await;
        assert_eq!(st, StatusCode::OK, "{html}");
        c.csrf = csrf_of(&html).expect("a signed-in page carries the session's CSRF token");
        c
    }
}

impl PageClient {
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.http.get(format!("{}{}", self.base, path)).send().await.expect("request");
        let st = resp.status();
        (st, resp.text().await.unwrap())
    }

    /// Post a form with the session's CSRF token added; returns the status, the
    /// `Location` header if any, and the body.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Option<String>, String) {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", self.csrf.as_str()));
        let resp = self.http.post(format!("{}{}", self.base, path)).form(&all).send().await.expect("request");
        let st = resp.status();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (st, location, resp.text().await.unwrap())
    }
}

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
    // The database name is what follows the first '/' after the authority (which may be
    // empty, as in `postgres:///db?host=/socket/dir`).
    let authority = head.find("://").map_or(0, |i| i + 3);
    let head = match head[authority..].find('/') {
        Some(i) => head[..authority + i].to_owned(),
        None => head,
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
        // Built under another name and renamed when migrated, so that a run that fails
        // half-way never leaves an unmigrated template behind.
        let building = format!("{template}_building");
        let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
        run(format!("drop database if exists {building}")).execute(&mut admin).await.unwrap();
        run(format!("create database {building}")).execute(&mut admin).await.unwrap();
        let pool = PgPool::connect(&url_for(&building)).await.unwrap();
        zerenzhi::db::MIGRATOR.run(&pool).await.expect("migrations apply");
        pool.close().await;
        run(format!("alter database {building} rename to {template}")).execute(&mut admin).await.unwrap();
    }
    let name = format!("zrz_t_{}", uuid::Uuid::new_v4().simple());
    // PostgreSQL refuses to copy a template while anything else is connected to it (a
    // backend still closing from the migration run, say): try again for a few seconds.
    let mut attempt = 0;
    loop {
        match sqlx::query(sqlx::AssertSqlSafe(format!("create database {name} template {template}")))
            .execute(&mut admin)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 50 => {
                attempt += 1;
                if attempt == 1 {
                    eprintln!("creating the test database failed ({e}); retrying");
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("creating the test database {name}: {e}"),
        }
    }
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
        TestApp::spawn_with(now, |_| {}).await
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

// ---------------------------------------------------------------------------------------
// Appended for tests/security.rs, tests/access_matrix.rs and tests/browser.rs.
// ---------------------------------------------------------------------------------------

impl TestApp {
    /// Like [`TestApp::spawn_at`], with the configuration changed first (an `https://`
    /// public URL, short session timeouts, …).
    pub async fn spawn_with(now: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
        let db_name = fresh_database().await;
        let data_dir = std::env::temp_dir().join(&db_name);
        let mut config = Config::for_tests(url_for(&db_name), data_dir.clone());
        configure(&mut config);
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

    /// Give a user's person a role on an organisation from 2020-01-01; panics unless given.
    pub async fn grant(&self, login: &str, org: &str, role: &str) {
        let (st, body) = self
            .post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2020-01-01"}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{login} as {role} of {org}: {body}");
    }
}

/// One route of the router: its HTTP method (lower case), its full path pattern as axum
/// spells it (`/records/{id}`), and the source file that registers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceRoute {
    pub method: String,
    pub path: String,
    pub file: String,
}

impl SourceRoute {
    /// `GET /records/{id}`
    pub fn key(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }
}

/// Every route the running router mounts, read from the sources at test time: starting at
/// `src/web/mod.rs`, each `.route("PATH", get(..).post(..))` call, following
/// `.merge(module::router(..))` and `.nest("/prefix", module::router(..))` into the module's
/// file. A module written but not merged yet is not mounted, so it is not listed.
pub fn mounted_routes() -> Vec<SourceRoute> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/mod.rs");
    let mut out = Vec::new();
    walk_router_file(&root, "", &mut out, 0);
    out.sort();
    let mut seen = std::collections::BTreeSet::new();
    for r in &out {
        assert!(seen.insert((r.method.clone(), r.path.clone())), "{} is registered twice", r.key());
    }
    out
}

const ROUTE_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn walk_router_file(file: &std::path::Path, prefix: &str, out: &mut Vec<SourceRoute>, depth: usize) {
    assert!(depth < 10, "router modules nest too deep at {}", file.display());
    let src = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let src = route_src::strip_comments(&src);
    let rel = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(file).display().to_string();
    assert!(!src.contains(".route_service("), "{rel}: route_service is not understood by the route parser");
    // The directory holding this module's child modules.
    let children_dir = if file.file_name().is_some_and(|n| n == "mod.rs") {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    let mut rest = src.as_str();
    loop {
        let next = [".route(", ".merge(", ".nest("].iter().filter_map(|pat| rest.find(pat).map(|i| (i, *pat))).min();
        let Some((at, pat)) = next else { break };
        rest = &rest[at + pat.len()..];
        let args = route_src::until_close(rest);
        match pat {
            ".route(" => {
                let lit = args
                    .trim_start()
                    .strip_prefix('"')
                    .unwrap_or_else(|| panic!("{rel}: a route path is not a literal: {args}"));
                let end = lit.find('"').expect("a closed string literal");
                let path = &lit[..end];
                let expr = lit[end + 1..].trim_start().strip_prefix(',').expect("a method router after the path");
                for m in route_src::methods_of(expr) {
                    out.push(SourceRoute { method: m, path: format!("{prefix}{path}"), file: rel.clone() });
                }
            }
            ".merge(" | ".nest(" => {
                let (inner_prefix, expr) = if pat == ".nest(" {
                    let lit = args.trim_start().strip_prefix('"').expect("a nest prefix literal");
                    let end = lit.find('"').unwrap();
                    (format!("{prefix}{}", &lit[..end]), lit[end + 1..].trim_start().trim_start_matches(',').trim())
                } else {
                    (prefix.to_owned(), args.trim())
                };
                let module = expr
                    .split("::router(")
                    .next()
                    .filter(|m| expr.contains("::router(") && m.chars().all(|c| c.is_alphanumeric() || c == '_'))
                    .unwrap_or_else(|| {
                        panic!("{rel}: the route parser understands only merge/nest(module::router(..)): {expr}")
                    });
                let child = [children_dir.join(format!("{module}.rs")), children_dir.join(module).join("mod.rs")]
                    .into_iter()
                    .find(|p| p.exists())
                    .unwrap_or_else(|| panic!("{rel}: no file for the module {module}"));
                walk_router_file(&child, &inner_prefix, out, depth + 1);
            }
            _ => unreachable!(),
        }
        rest = &rest[args.len()..];
    }
}

/// A small reader of Rust source, enough to find route registrations.
pub mod route_src {
    /// If a string or char literal starts at byte `i`, the index just past its end.
    fn literal_end(s: &str, i: usize) -> Option<usize> {
        let b = s.as_bytes();
        match b[i] {
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                Some((j + 1).min(b.len()))
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => s[i + 2..].find('\'').map(|k| i + 2 + k + 1),
            b'\'' => {
                let ch = s[i + 1..].chars().next()?;
                let after = i + 1 + ch.len_utf8();
                (b.get(after) == Some(&b'\'')).then_some(after + 1)
            }
            _ => None,
        }
    }

    /// Source with comments blanked out (literals kept), so a commented-out route does not count.
    pub fn strip_comments(src: &str) -> String {
        let b = src.as_bytes();
        let mut out = String::with_capacity(src.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            } else if let Some(end) = literal_end(src, i) {
                out.push_str(&src[i..end]);
                i = end;
            } else {
                let ch = src[i..].chars().next().expect("inside the string");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    /// The text of an argument list starting just after `(`, up to its matching `)`.
    pub fn until_close(s: &str) -> &str {
        let b = s.as_bytes();
        let mut depth = 0usize;
        let mut i = 0;
        while i < b.len() {
            if let Some(end) = literal_end(s, i) {
                i = end;
                continue;
            }
            match b[i] {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => return &s[..i],
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        panic!("unbalanced parentheses in a router call")
    }

    /// `(method, path)` of every `.route(..)` in one file's source, in order.
    pub fn routes_in(src: &str, file: &str) -> Vec<(String, String)> {
        let src = strip_comments(src);
        assert!(!src.contains(".route_service("), "{file}: route_service is not understood by the route parser");
        let mut out = Vec::new();
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let args = until_close(rest);
            let args_trimmed = args.trim_start();
            let lit = args_trimmed
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("{file}: a route path is not a literal: {args}"));
            let end = lit.find('"').expect("a closed string literal");
            let path = &lit[..end];
            let expr = lit[end + 1..].trim_start().strip_prefix(',').expect("a method router after the path");
            for m in methods_of(expr) {
                out.push((m, path.to_owned()));
            }
            rest = &rest[args.len()..];
        }
        out
    }

    /// The HTTP methods of a method router such as `get(a).post(b).layer(..)`: the method
    /// calls at the top level of the expression (other calls, like `.layer(..)`, skipped).
    pub fn methods_of(expr: &str) -> Vec<String> {
        let b = expr.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if let Some(end) = literal_end(expr, i) {
                i = end;
                continue;
            }
            let c = b[i];
            if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                let path = &expr[start..i];
                let name = path.rsplit("::").next().unwrap_or(path);
                let rest = expr[i..].trim_start();
                if let Some(args) = rest.strip_prefix('(') {
                    assert!(
                        !matches!(name, "any" | "on" | "any_service" | "on_service"),
                        "the route parser cannot tell the methods of {name}(..) in {expr:?}"
                    );
                    if super::ROUTE_METHODS.contains(&name) {
                        out.push(name.to_owned());
                    }
                    let inner = until_close(args);
                    i = expr.len() - rest.len() + 1 + inner.len() + 1;
                }
            } else {
                i += 1;
            }
        }
        assert!(!out.is_empty(), "no method in the method router {expr:?}");
        out
    }
}

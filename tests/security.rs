//! The security checklist (`../shared/SECURITY.md`), rows 1–16, 21 and 25–27, over real
//! HTTP: sign-in, passwords, sessions and their cookies (parsed from `Set-Cookie`), CSRF,
//! security headers on every route the router mounts, and what reaches the logs. Each
//! test is named by its row. Rows 17–18 (who may call which route) are in
//! `tests/access_matrix.rs`; the browser half of row 21 is in `tests/browser.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{PASSWORD, SourceRoute, TestApp, csrf_of, mounted_routes};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// A client that shows its cookies
// ---------------------------------------------------------------------------------------

/// One `Set-Cookie` header, parsed.
#[derive(Debug, Clone)]
struct SetCookie {
    name: String,
    value: String,
    /// Attribute names in lower case, with their values.
    attrs: Vec<(String, String)>,
}

impl SetCookie {
    fn parse(header: &str) -> SetCookie {
        let mut parts = header.split(';');
        let (name, value) = parts.next().unwrap_or("").trim().split_once('=').unwrap_or(("", ""));
        let attrs = parts
            .map(|a| {
                let (k, v) = a.trim().split_once('=').unwrap_or((a.trim(), ""));
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        SetCookie { name: name.to_owned(), value: value.to_owned(), attrs }
    }

    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k == attr)
    }

    fn attr(&self, attr: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == attr).map(|(_, v)| v.as_str())
    }

    fn deletes(&self) -> bool {
        self.attr("max-age") == Some("0") || self.value.is_empty()
    }
}

/// A response, read whole.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    cookies: Vec<SetCookie>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    fn cookie(&self, name: &str) -> Option<&SetCookie> {
        self.cookies.iter().find(|c| c.name == name)
    }

    fn to_sign_in(&self) -> bool {
        self.status == StatusCode::SEE_OTHER && self.location().starts_with("/login")
    }
}

async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let headers = resp.headers().clone();
    let cookies = headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(SetCookie::parse).collect();
    let body = resp.text().await.unwrap_or_default();
    Resp { status, headers, body, cookies }
}

/// A browser-like client that keeps its cookies in the open, so a test can read, keep
/// and plant them.
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(t: &TestApp) -> Browser {
        Browser { http: t.http.clone(), base: t.base.clone(), cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Resp {
        let req = if self.cookies.is_empty() { req } else { req.header("cookie", self.cookie_header()) };
        let resp = read(req.send().await.expect("request")).await;
        for c in &resp.cookies {
            if c.deletes() {
                self.cookies.remove(&c.name);
            } else {
                self.cookies.insert(c.name.clone(), c.value.clone());
            }
        }
        resp
    }

    async fn get(&mut self, path: &str) -> Resp {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let req = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.send(req).await
    }

    /// Open the sign-in page and send the form; returns the answer to the form.
    async fn sign_in_with(&mut self, login: &str, password: &str) -> Resp {
        let form = self.get("/login").await;
        let csrf = match csrf_of(&form.body) {
            Some(c) => c,
            // Already signed in: the sign-in page sends one on; sign in again from a form
            // of a signed-in page.
            None => csrf_of(&self.get("/").await.body).expect("a CSRF token on the page"),
        };
        self.post("/login", &[("login", login), ("password", password), ("csrf", &csrf), ("next", "/")]).await
    }

    async fn sign_in(&mut self, login: &str) -> Resp {
        let r = self.sign_in_with(login, PASSWORD).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-in as {login}: {}", r.body);
        r
    }

    /// The CSRF token of the signed-in session, as its pages carry it.
    async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        assert_eq!(page.status, StatusCode::OK, "signed in");
        csrf_of(&page.body).expect("a CSRF token")
    }

    async fn signed_in(&mut self) -> bool {
        let r = self.get("/").await;
        match r.status {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER if r.location().starts_with("/login") => false,
            s => panic!("GET / answered {s}"),
        }
    }
}

const SESSION: &str = "zrz_session";
const PRE_CSRF: &str = "zrz_csrf";

/// The company tree on 26 March 2026 with the ideology system, and `zhang` the secretary
/// of branch HX-1, `li` the secretary of the company committee HGS above it.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    for (login, org) in [("zhang", "HX-1"), ("li", "HGS")] {
        t.user(login, false).await;
        t.grant(login, org, "secretary").await;
    }
    t
}

/// Audit rows with this action, oldest first: `(actor, object_id, detail, at, ip)`.
async fn audit_rows(
    t: &TestApp,
    action: &str,
) -> Vec<(String, String, Value, chrono::DateTime<chrono::Utc>, Option<String>)> {
    sqlx::query_as("select actor, object_id, detail, at, ip from audit_log where action = $1 order by id")
        .bind(action)
        .fetch_all(&t.pool)
        .await
        .unwrap()
}

async fn csrf_refusals(t: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from audit_log where action = 'auth.refused' and detail->>'why' = 'csrf'")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

/// Create a user through the API as the admin; returns the status and body.
async fn create_user(t: &TestApp, login: &str, password: &str) -> (StatusCode, Value) {
    t.post("/api/v1/users", json!({"login": login, "password": password, "name": login})).await
}

/// A small but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// File a report with a PDF through the record form, as the signed-in user of `b`;
/// returns the record's id and the attachment's id.
async fn record_with_attachment(t: &TestApp, b: &mut Browser, org: &str, rule: &str) -> (String, String) {
    let csrf = b.csrf().await;
    let form = [
        ("rule", rule),
        ("period", "2026-Q1"),
        ("person", ""),
        ("occurred_on", "2026-03-20"),
        ("title", "一季度工作汇报"),
        ("body", "汇报正文"),
        ("action", "submit"),
    ]
    .iter()
    .fold(reqwest::multipart::Form::new(), |f, (k, v)| f.text(k.to_string(), v.to_string()))
    .part("files", reqwest::multipart::Part::bytes(PDF.to_vec()).file_name("会议记录.pdf"));
    let req = b.http.post(format!("{}/orgs/{org}/records?csrf={csrf}", t.base)).multipart(form);
    let r = b.send(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.location().trim_start_matches("/records/").split(['?', '/']).next().unwrap().to_owned();
    let attachment: i64 = sqlx::query_scalar("select id from attachment where record_id = $1")
        .bind(id.parse::<i64>().unwrap())
        .fetch_one(&t.pool)
        .await
        .unwrap();
    (id, attachment.to_string())
}

// ---------------------------------------------------------------------------------------
// Rows 1–3: passwords
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn row_1_passwords_of_64_and_128_characters_work_and_a_truncated_one_fails() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let p64: String = "correct horse battery staple ".repeat(3).chars().take(64).collect();
    let p128: String = "Tr0ub4dor&3 — 我们的口令很长 ".repeat(8).chars().take(128).collect();
    assert_eq!((p64.chars().count(), p128.chars().count()), (64, 128));
    for (login, password) in [("long64", &p64), ("long128", &p128)] {
        let (st, body) = create_user(&t, login, password).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        let mut b = Browser::new(&t);
        let r = b.sign_in_with(login, password).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "the whole {}-character password signs in",
            password.chars().count()
        );
        assert!(b.signed_in().await);
        let n = password.chars().count();
        for cut in [n - 1, 72.min(n - 1), 64.min(n - 1), 8] {
            let truncated: String = password.chars().take(cut).collect();
            let r = Browser::new(&t).sign_in_with(login, &truncated).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "the first {cut} characters must not sign in");
        }
        let longer = format!("{password}x");
        let r = Browser::new(&t).sign_in_with(login, &longer).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a longer password is another password");
    }
    // A 1,024-character password is kept whole too, and changing to a 128-character one works.
    let p1024: String = "zx".repeat(512);
    let (st, body) = create_user(&t, "long1024", &p1024).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let mut b = Browser::new(&t);
    assert_eq!(b.sign_in_with("long1024", &p1024).await.status, StatusCode::SEE_OTHER);
    let csrf = b.csrf().await;
    let r =
        b.post("/account/password", &[("current", &p1024), ("new", &p128), ("confirm", &p128), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(Browser::new(&t).sign_in_with("long1024", &p128).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn row_1_passwords_need_8_characters_and_no_composition_rules() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let (st, body) = create_user(&t, "short", "zq8#Lm2").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "7 characters are too few: {body}");
    assert_eq!(body["error"]["field"], "password");
    // No composition rules: lower-case letters only, digits only, or Chinese characters.
    for (login, password) in [("lower", "ljmxqwpzv"), ("digits", "73019468"), ("hanzi", "山高月小水落石出")] {
        let (st, body) = create_user(&t, login, password).await;
        assert_eq!(st, StatusCode::CREATED, "{password:?} is acceptable: {body}");
        let r = Browser::new(&t).sign_in_with(login, password).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{login} signs in");
    }
    // The page refuses a 7-character new password and says why, beside the field.
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let csrf = b.csrf().await;
    let r = b
        .post(
            "/account/password",
            &[("current", PASSWORD), ("new", "zq8#Lm2"), ("confirm", "zq8#Lm2"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("aria-invalid=\"true\""), "the field is marked");
}

#[tokio::test]
async fn row_2_common_and_breached_passwords_from_the_shipped_list_are_refused() {
    let list = include_str!("../src/common-passwords.txt");
    let entries: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && l.chars().count() >= 8)
        .collect();
    assert!(entries.len() > 10_000, "the shipped list is substantial: {} entries", entries.len());
    // The table: every 97th entry of the list, in several spellings.
    let mut checked = 0;
    for p in entries.iter().step_by(97) {
        for variant in [p.to_string(), p.to_uppercase()] {
            let refused = zerenzhi::db::users::check_password(&variant).is_err();
            assert!(refused, "{variant:?} is on the shipped list and must be refused");
            checked += 1;
        }
    }
    assert!(checked > 500);
    for well_known in ["password", "12345678", "qwertyuiop", "iloveyou", "password1", "Passw0rd", "1qaz2wsx"] {
        let on_list = entries.iter().any(|e| e.eq_ignore_ascii_case(well_known));
        if on_list {
            assert!(zerenzhi::db::users::check_password(well_known).is_err(), "{well_known}");
        }
    }
    assert!(zerenzhi::db::users::check_password("山高月小水落石出").is_ok(), "an unusual one passes");

    // Over HTTP: creating an account, changing one's password, an admin's reset.
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let (st, body) = create_user(&t, "common", "sunshine").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "password");
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let csrf = b.csrf().await;
    let r = b
        .post(
            "/account/password",
            &[("current", PASSWORD), ("new", "Football"), ("confirm", "Football"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a common password is refused on change");
    assert!(b.signed_in().await, "and nothing changed");
    let (st, body) = t.post("/api/v1/users/zhang/password", json!({"password": "princess"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "an admin cannot set a common one either: {body}");
}

#[tokio::test]
async fn row_3_passwords_are_stored_as_argon2id_with_owasp_parameters() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let (st, _) = create_user(&t, "hashed", "a-quiet-evening-by-the-lake").await;
    assert_eq!(st, StatusCode::CREATED);
    let hash: String = sqlx::query_scalar("select password_hash from app_user where login = 'hashed'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "argon2id, version 1.3: {hash}");
    assert!(!hash.contains("a-quiet-evening"), "the password itself is not stored");
    let params: BTreeMap<&str, u32> = hash
        .split('$')
        .nth(3)
        .expect("a parameter field")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    // OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
    assert!(params["m"] >= 19 * 1024, "memory {} KiB", params["m"]);
    assert!(params["t"] >= 2, "iterations {}", params["t"]);
    assert!(params["p"] >= 1, "lanes {}", params["p"]);
    let salt = hash.split('$').nth(4).expect("a salt");
    assert!(salt.len() >= 22, "a salt of at least 16 bytes: {salt}");
    // Two accounts with the same password get different hashes (a fresh salt each).
    create_user(&t, "hashed2", "a-quiet-evening-by-the-lake").await;
    let other: String = sqlx::query_scalar("select password_hash from app_user where login = 'hashed2'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_ne!(hash, other);
    // A changed password is hashed the same way.
    let (st, _) = t.post("/api/v1/users/hashed/password", json!({"password": "another-long-passphrase"})).await;
    assert_eq!(st, StatusCode::OK);
    let changed: String = sqlx::query_scalar("select password_hash from app_user where login = 'hashed'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert!(changed.starts_with("$argon2id$v=19$m=") && changed != hash);
}

// ---------------------------------------------------------------------------------------
// Rows 4–6: brute force, default accounts, password change
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn row_4_twenty_wrong_sign_ins_are_slowed_to_429_even_with_a_changing_x_forwarded_for() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    let page = b.get("/login").await;
    let csrf = csrf_of(&page.body).unwrap();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let req = b
            .http
            .post(format!("{}/login", t.base))
            .header("x-forwarded-for", format!("10.0.{i}.{}", 200 - i))
            .header("x-real-ip", format!("10.1.{i}.7"))
            .form(&[("login", "zhang"), ("password", &format!("wrong-guess-{i}")), ("csrf", &csrf)]);
        statuses.push(b.send(req).await.status.as_u16());
    }
    let first = statuses.iter().position(|s| *s == 429).unwrap_or_else(|| panic!("never slowed: {statuses:?}"));
    assert!(first <= 10, "slowed by the 11th attempt, not the {}th: {statuses:?}", first + 1);
    assert!(statuses[..first].iter().all(|s| *s == 422), "{statuses:?}");
    assert!(statuses[first..].iter().all(|s| *s == 429), "and stays slowed: {statuses:?}");
    // While slowed, even the right password does not sign in; the answer says when to retry.
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u32>().is_ok()), "Retry-After in seconds");
    assert!(!r.cookies.iter().any(|c| c.name == SESSION && !c.deletes()), "no session");
    // A quarter of an hour later the right password works again.
    t.set_now("2026-03-26T10:16:00+08:00");
    assert_eq!(b.sign_in_with("zhang", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn row_4_guessing_across_many_logins_from_one_address_is_slowed_too() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    let csrf = csrf_of(&b.get("/login").await.body).unwrap();
    let mut slowed_at = None;
    for i in 0..80 {
        let login = format!("guess{i}");
        let req = b.http.post(format!("{}/login", t.base)).header("x-forwarded-for", format!("192.0.2.{i}")).form(&[
            ("login", login.as_str()),
            ("password", "not-the-password"),
            ("csrf", &csrf),
        ]);
        if b.send(req).await.status == StatusCode::TOO_MANY_REQUESTS {
            slowed_at = Some(i + 1);
            break;
        }
    }
    let n = slowed_at.expect("80 logins tried from one address are slowed");
    assert!(n <= 51, "slowed by attempt 51, not {n}");
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the address is slowed for every login");
}

#[tokio::test]
async fn row_5_a_fresh_install_has_no_accounts_and_admin_admin_does_not_sign_in() {
    // A fresh, migrated database: no user at all.
    let db = common::fresh_database().await;
    let pool = zerenzhi::db::connect(&common::url_for(&db), 2).await.unwrap();
    let users: i64 = sqlx::query_scalar("select count(*) from app_user").fetch_one(&pool).await.unwrap();
    assert_eq!(users, 0, "the migrations create no account");
    let tokens: i64 = sqlx::query_scalar("select count(*) from api_token").fetch_one(&pool).await.unwrap();
    assert_eq!(tokens, 0);
    pool.close().await;
    // A running portal (its only account is the test's own admin, with the test's password).
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    for (login, password) in
        [("admin", "admin"), ("admin", "password"), ("admin", "12345678"), ("root", "root"), ("test", "test")]
    {
        let r = Browser::new(&t).sign_in_with(login, password).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{login}/{password} does not sign in");
    }
}

/// Start `zerenzhi demo` on a database and read the logins it prints; then stop it.
async fn demo_logins(db_url: &str) -> BTreeMap<String, String> {
    use tokio::io::AsyncBufReadExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zerenzhi"))
        .arg("demo")
        .env("DATABASE_URL", db_url)
        .env("ZRZ_ADDR", &addr)
        .env("ZRZ_TICK_SECONDS", "0")
        .env("ZRZ_LOG", "warn")
        .env("ZRZ_DATA_DIR", std::env::temp_dir().join(format!("zrz-demo-{}", uuid::Uuid::new_v4().simple())))
        .env_remove("ZRZ_NOW")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start zerenzhi demo");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut logins = BTreeMap::new();
    let read = async {
        let mut in_list = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Demo logins") {
                in_list = true;
                continue;
            }
            if in_list {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(login), Some(password)) => {
                        logins.insert(login.to_owned(), password.to_owned());
                    }
                    _ if !logins.is_empty() => break,
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(300), read).await.expect("the demo prints its logins");
    child.kill().await.ok();
    logins
}

#[tokio::test]
async fn row_5_the_demo_prints_fresh_random_passwords_on_every_start() {
    let db = common::fresh_database().await;
    let url = common::url_for(&db);
    let first = demo_logins(&url).await;
    assert!(first.contains_key("admin") && first.contains_key("zhangwei"), "{first:?}");
    for (login, password) in &first {
        assert!(password.chars().count() >= 12, "{login}'s password is long: {password}");
        assert_ne!(password, login);
        assert!(zerenzhi::db::users::check_password(password).is_ok(), "{login}'s password is acceptable");
    }
    let distinct: std::collections::BTreeSet<&String> = first.values().collect();
    assert_eq!(distinct.len(), first.len(), "each login gets its own password");
    let second = demo_logins(&url).await;
    for (login, password) in &second {
        assert_ne!(first.get(login), Some(password), "{login} gets a new password on the second start");
    }
    // The printed password is the one that works.
    let pool = zerenzhi::db::connect(&url, 2).await.unwrap();
    let hash: String =
        sqlx::query_scalar("select password_hash from app_user where login = 'admin'").fetch_one(&pool).await.unwrap();
    assert!(zerenzhi::secret::verify_password(&second["admin"], &hash));
    assert!(!zerenzhi::secret::verify_password(&first["admin"], &hash));
    assert!(!zerenzhi::secret::verify_password("admin", &hash));
    pool.close().await;
}

#[tokio::test]
async fn row_6_changing_a_password_needs_the_current_one() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let token = t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let csrf = b.csrf().await;
    let new = "a-new-and-long-passphrase";
    for fields in [
        vec![("new", new), ("confirm", new)],
        vec![("current", ""), ("new", new), ("confirm", new)],
        vec![("current", "not-my-password"), ("new", new), ("confirm", new)],
    ] {
        let mut all = fields.clone();
        all.push(("csrf", &csrf));
        let r = b.post("/account/password", &all).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert!(r.body.contains("aria-invalid=\"true\""));
    }
    assert!(b.signed_in().await, "a refused change ends no session");
    assert_eq!(Browser::new(&t).sign_in_with("zhang", new).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(Browser::new(&t).sign_in_with("zhang", PASSWORD).await.status, StatusCode::SEE_OTHER);
    // The API's password route is an admin's reset: a user cannot use it to skip the check.
    let (st, body) = t.call("POST", "/api/v1/users/zhang/password", &token, Some(json!({"password": new}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    // With the current password it works.
    let r =
        b.post("/account/password", &[("current", PASSWORD), ("new", new), ("confirm", new), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(Browser::new(&t).sign_in_with("zhang", new).await.status, StatusCode::SEE_OTHER);
}

// ---------------------------------------------------------------------------------------
// Rows 7–11: sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn row_7_session_ids_have_128_random_bits_and_are_unique() {
    use base64::Engine;
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let user_id: i64 =
        sqlx::query_scalar("select id from app_user where login = 'zhang'").fetch_one(&t.pool).await.unwrap();
    // 1,000 sessions made the way sign-in makes them.
    let mut ids = std::collections::BTreeSet::new();
    let mut bits_set = [0u32; 256];
    for _ in 0..1000 {
        let raw = zerenzhi::web::session::create(&t.app, user_id, t.clock.now(), None, None).await.unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&raw).expect("URL-safe base64");
        assert!(bytes.len() * 8 >= 128, "{} bits", bytes.len() * 8);
        for (i, b) in bytes.iter().enumerate().take(32) {
            for bit in 0..8 {
                bits_set[i * 8 + bit] += u32::from((b >> bit) & 1);
            }
        }
        assert!(ids.insert(raw), "a session id repeated");
    }
    assert_eq!(ids.len(), 1000);
    // Every bit of the id is set in roughly half of the ids: random, not a counter or a time.
    let used = ids.iter().next().map(|s| s.len() * 6 / 8).unwrap_or(0).min(32) * 8;
    for (i, n) in bits_set.iter().take(used).enumerate() {
        assert!((350..=650).contains(n), "bit {i} set in {n} of 1,000 ids");
    }
    // The database keeps only their SHA-256.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select id_hash from session").fetch_all(&t.pool).await.unwrap();
    assert_eq!(stored.len(), 1000);
    let any = ids.iter().next().unwrap();
    assert!(stored.contains(&zerenzhi::secret::token_hash(any)));
    let as_text: i64 = sqlx::query_scalar("select count(*) from session where encode(id_hash, 'escape') = $1")
        .bind(any)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(as_text, 0);
    // Over HTTP: sign-ins get distinct ids of the same length.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let r = Browser::new(&t).sign_in("zhang").await;
        let c = r.cookie(SESSION).expect("a session cookie");
        assert!(c.value.len() >= 22, "at least 128 bits in base64: {}", c.value);
        assert!(seen.insert(c.value.clone()));
    }
}

#[tokio::test]
async fn row_8_signing_in_gives_a_new_session_id_and_the_old_one_stops_working() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    t.user("wang", false).await;
    let mut b = Browser::new(&t);
    let form = b.get("/login").await;
    assert!(form.cookie(SESSION).is_none(), "no session before signing in");
    let pre = b.cookies.get(PRE_CSRF).cloned().expect("the sign-in form's token cookie");
    let r = b.sign_in("zhang").await;
    let first = r.cookie(SESSION).expect("a session cookie").value.clone();
    assert_ne!(first, pre, "the pre-sign-in cookie is not promoted to a session");
    assert!(r.cookie(PRE_CSRF).is_some_and(SetCookie::deletes), "the sign-in form's cookie is dropped");
    let old = b.clone();
    // Signing in again (as someone else, from the same browser) gives another id …
    let r = b.sign_in_with("wang", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let second = r.cookie(SESSION).expect("a new session cookie").value.clone();
    assert_ne!(first, second);
    let page = b.get("/").await;
    assert!(page.body.contains("wang"), "now signed in as wang");
    // … and the old id no longer signs anyone in.
    let mut old = old;
    assert!(!old.signed_in().await, "the old cookie gets the sign-in page");
}

#[tokio::test]
async fn row_8_a_session_id_planted_before_sign_in_is_not_adopted() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let planted = "AttackerChosenSessionId0123456789abcdefghij";
    let mut b = Browser::new(&t);
    b.cookies.insert(SESSION.into(), planted.into());
    let r = b.sign_in("zhang").await;
    let got = r.cookie(SESSION).expect("a session cookie").value.clone();
    assert_ne!(got, planted);
    let mut attacker = Browser::new(&t);
    attacker.cookies.insert(SESSION.into(), planted.into());
    assert!(!attacker.signed_in().await, "the planted id signs nobody in");
}

#[tokio::test]
async fn row_9_signing_out_ends_the_session_on_the_server() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let copy = b.clone();
    let csrf = b.csrf().await;
    let sessions = |t: &TestApp| {
        let pool = t.pool.clone();
        async move { sqlx::query_scalar::<_, i64>("select count(*) from session").fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(sessions(&t).await, 1);
    // Signing out is a POST; a GET does nothing.
    let r = b.get("/logout").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(b.signed_in().await);
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"));
    assert!(r.cookie(SESSION).is_some_and(SetCookie::deletes), "the cookie is deleted");
    assert_eq!(sessions(&t).await, 0, "the server forgets the session");
    // The old cookie, replayed, gets the sign-in page.
    let mut replay = copy;
    let r = replay.get("/").await;
    assert!(r.to_sign_in(), "{} {}", r.status, r.location());
    let r = replay.get("/review").await;
    assert!(r.to_sign_in());
}

#[tokio::test]
async fn row_10_a_session_ends_after_30_idle_minutes() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    // Activity keeps it alive: a request every 20 minutes for two hours.
    for minutes in [20, 40, 60, 80, 100, 120] {
        t.set_now(&format!("2026-03-26T{:02}:{:02}:00+08:00", 10 + minutes / 60, minutes % 60));
        assert!(b.signed_in().await, "active at +{minutes} min");
    }
    // 29 idle minutes: still there; 31: gone.
    t.set_now("2026-03-26T12:29:00+08:00");
    assert!(b.signed_in().await, "29 idle minutes");
    t.set_now("2026-03-26T13:00:30+08:00");
    assert!(!b.signed_in().await, "31½ idle minutes end the session");
    t.set_now("2026-03-26T13:01:00+08:00");
    assert!(!b.signed_in().await, "and it stays ended");
    let left: i64 = sqlx::query_scalar("select count(*) from session").fetch_one(&t.pool).await.unwrap();
    assert_eq!(left, 0, "the ended session is deleted");
}

#[tokio::test]
async fn row_10_a_session_ends_12_hours_after_sign_in_however_active() {
    let t = TestApp::spawn_at("2026-03-26T08:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let mut minutes = 0;
    while minutes < 12 * 60 - 20 {
        minutes += 20;
        t.set_now(&format!("2026-03-26T{:02}:{:02}:00+08:00", 8 + minutes / 60, minutes % 60));
        assert!(b.signed_in().await, "active at +{minutes} min");
    }
    t.set_now("2026-03-26T20:00:30+08:00");
    assert!(!b.signed_in().await, "12 hours after sign-in the session ends, active or not");
}

#[tokio::test]
async fn row_10_shorter_timeouts_can_be_configured() {
    let t = TestApp::spawn_with("2026-03-26T10:00:00+08:00", |c| {
        c.session_idle_minutes = 5;
        c.session_max_hours = 1;
    })
    .await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    t.set_now("2026-03-26T10:04:00+08:00");
    assert!(b.signed_in().await);
    t.set_now("2026-03-26T10:09:30+08:00");
    assert!(!b.signed_in().await, "5 idle minutes");
    b.sign_in("zhang").await;
    // Signed in again at 10:09:30; active every 4 minutes, so never idle for 5.
    for m in (13..=69).step_by(4) {
        t.set_now(&format!("2026-03-26T{:02}:{:02}:00+08:00", 10 + m / 60, m % 60));
        assert!(b.signed_in().await, "+{m} min");
    }
    t.set_now("2026-03-26T11:10:00+08:00");
    assert!(!b.signed_in().await, "an hour after signing in");
}

#[tokio::test]
async fn row_11_changing_ones_password_ends_the_other_sessions() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut office = Browser::new(&t);
    office.sign_in("zhang").await;
    let mut phone = Browser::new(&t);
    phone.sign_in("zhang").await;
    let csrf = phone.csrf().await;
    let new = "a-new-and-long-passphrase";
    let r = phone
        .post("/account/password", &[("current", PASSWORD), ("new", new), ("confirm", new), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!office.signed_in().await, "the other session is over");
    assert!(phone.signed_in().await, "the one that changed it goes on (in a new session)");
    let r = office.sign_in_with("zhang", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "the old password is gone");
}

#[tokio::test]
async fn row_11_disabling_a_user_ends_their_sessions_and_tokens_for_good() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let token = t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let kept = b.clone();
    let (st, body) = t.patch("/api/v1/users/zhang", json!({"disabled": true})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(!b.signed_in().await, "the disabled user's session is refused");
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "and their API token");
    assert_eq!(Browser::new(&t).sign_in_with("zhang", PASSWORD).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Enabling the account again does not bring the old session back.
    let (st, _) = t.patch("/api/v1/users/zhang", json!({"disabled": false})).await;
    assert_eq!(st, StatusCode::OK);
    let mut kept = kept;
    assert!(!kept.signed_in().await, "the old cookie stays dead");
    // The same through the admin's page.
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let csrf = admin.csrf().await;
    let r = admin.post("/admin/users/zhang/disable", &[("csrf", &csrf)]).await;
    assert!(r.status == StatusCode::SEE_OTHER || r.status == StatusCode::OK, "{} {}", r.status, r.body);
    assert!(!b.signed_in().await, "disabled from the page");
}

#[tokio::test]
async fn row_11_an_admin_resetting_a_password_ends_the_users_sessions() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let (st, body) = t.post("/api/v1/users/zhang/password", json!({"generate": true})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(!b.signed_in().await, "reset through the API");
    b.sign_in_with("zhang", body["password"].as_str().unwrap()).await;
    assert!(b.signed_in().await);
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let csrf = admin.csrf().await;
    let r = admin.post("/admin/users/zhang/password", &[("csrf", &csrf), ("password_mode", "generate")]).await;
    assert!(r.status.is_success() || r.status.is_redirection(), "{} {}", r.status, r.body);
    assert!(!b.signed_in().await, "reset from the admin's page");
}

// ---------------------------------------------------------------------------------------
// Row 12: cookies
// ---------------------------------------------------------------------------------------

fn assert_strict_cookie(c: &SetCookie, https: bool) {
    assert!(c.has("httponly"), "{} is HttpOnly", c.name);
    let same_site = c.attr("samesite").map(str::to_ascii_lowercase);
    assert!(matches!(same_site.as_deref(), Some("lax" | "strict")), "{} has SameSite=Lax or Strict", c.name);
    assert_eq!(c.attr("path"), Some("/"), "{} is for the whole site", c.name);
    assert!(!c.has("domain"), "{} names no domain (host-only)", c.name);
    if https {
        assert!(c.has("secure"), "{} is Secure over HTTPS", c.name);
    }
}

#[tokio::test]
async fn row_12_cookies_are_http_only_and_same_site_and_end_with_the_browser() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    let form = b.get("/login").await;
    let pre = form.cookie(PRE_CSRF).expect("the sign-in form sets its token cookie").clone();
    assert_strict_cookie(&pre, false);
    let r = b.sign_in("zhang").await;
    let session = r.cookie(SESSION).expect("a session cookie").clone();
    assert_strict_cookie(&session, false);
    assert!(!session.has("max-age") && !session.has("expires"), "the session cookie ends with the browser");
    assert!(!session.has("secure"), "plain HTTP (no https public URL): no Secure flag, or the cookie would be lost");
    let csrf = b.csrf().await;
    let r = b.post("/lang", &[("to", "en"), ("next", "/"), ("csrf", &csrf)]).await;
    let lang = r.cookie("zrz_lang").expect("the language cookie").clone();
    assert_strict_cookie(&lang, false);
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    let gone = r.cookie(SESSION).expect("signing out deletes the cookie");
    assert!(gone.deletes());
    assert_strict_cookie(gone, false);
}

#[tokio::test]
async fn row_12_over_https_cookies_are_secure_and_host_prefixed_and_hsts_is_sent() {
    let t = TestApp::spawn_with("2026-03-26T10:00:00+08:00", |c| {
        c.public_url = Some("https://zrz.example.cn".into());
    })
    .await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    let form = b.get("/login").await;
    let hsts = form.header("strict-transport-security").expect("HSTS over HTTPS").to_owned();
    let max_age: u64 = hsts
        .split(';')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .expect("a max-age");
    assert!(max_age >= 180 * 24 * 3600, "HSTS for at least half a year: {hsts}");
    let pre = form.cookie("__Host-zrz_csrf").expect("a __Host- token cookie").clone();
    assert_strict_cookie(&pre, true);
    assert!(form.cookie(PRE_CSRF).is_none(), "no unprefixed cookie");
    let csrf = csrf_of(&form.body).unwrap();
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", &csrf), ("next", "/")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = r.cookie("__Host-zrz_session").expect("a __Host- session cookie").clone();
    assert_strict_cookie(&session, true);
    assert!(r.cookie(SESSION).is_none());
    let page = b.get("/").await;
    assert_eq!(page.status, StatusCode::OK, "the __Host- cookie signs in");
    assert!(page.header("strict-transport-security").is_some());
    let csrf = csrf_of(&page.body).unwrap();
    let r = b.post("/lang", &[("to", "en"), ("next", "/"), ("csrf", &csrf)]).await;
    let lang = r.cookie("zrz_lang").or_else(|| r.cookie("__Host-zrz_lang")).expect("a language cookie").clone();
    assert_strict_cookie(&lang, true);
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    let gone = r.cookie("__Host-zrz_session").expect("signing out deletes the cookie");
    assert!(gone.deletes());
    assert_strict_cookie(gone, true);
    // A cookie without the prefix is not taken for a session over HTTPS.
    let mut plain = Browser::new(&t);
    plain.sign_in_with("zhang", PASSWORD).await;
    let raw = plain.cookies.get("__Host-zrz_session").cloned().unwrap();
    let mut downgraded = Browser::new(&t);
    downgraded.cookies.insert(SESSION.into(), raw);
    assert!(!downgraded.signed_in().await);
    // HSTS on every route over HTTPS.
    for r in mounted_routes().iter().filter(|r| r.method == "get") {
        let resp = Browser::new(&t).get(&sample_path(r)).await;
        assert!(resp.header("strict-transport-security").is_some(), "{}: no HSTS", r.key());
    }
}

// ---------------------------------------------------------------------------------------
// Row 13: CSRF
// ---------------------------------------------------------------------------------------

/// A concrete path for a route pattern: plausible values for its parameters (objects of
/// the `company()` fixture where one is at hand).
fn sample_path(r: &SourceRoute) -> String {
    let mut out = String::new();
    for seg in r.path.split('/').skip(1) {
        out.push('/');
        let value = match seg {
            "{code}" if r.path.contains("/kinds/") => "branch",
            "{code}" if r.path.contains("/systems/") => "ideology-company",
            "{code}" if r.path.contains("/rules/") => "A8",
            "{code}" => "HX-1",
            "{login}" => "zhang",
            "{template}" => "ideology-company",
            "{file}" if r.path.starts_with("/feeds/") => "no-such-feed.ics",
            "{file}" => "orgs.csv",
            "{*path}" => "app.css",
            s if s.starts_with('{') => "1",
            s => s,
        };
        out.push_str(value);
    }
    if out.is_empty() { "/".into() } else { out }
}

/// The page routes that change state: every non-GET route outside the API.
fn page_posts() -> Vec<SourceRoute> {
    let all = mounted_routes();
    let posts: Vec<SourceRoute> =
        all.into_iter().filter(|r| !r.is_api() && !matches!(r.method.as_str(), "get" | "head" | "options")).collect();
    assert!(posts.len() >= 20, "the parser found only {} page POST routes", posts.len());
    assert!(posts.iter().all(|r| r.method == "post"), "pages change state by POST only: {posts:?}");
    posts
}

#[tokio::test]
async fn row_13_every_post_without_the_right_csrf_token_or_from_another_origin_is_refused() {
    let t = company().await;
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let csrf = admin.csrf().await;
    let mut other = Browser::new(&t);
    other.sign_in("zhang").await;
    let others_token = other.csrf().await;
    assert_ne!(csrf, others_token);
    let host = t.base.trim_start_matches("http://").to_owned();
    let mut failures = Vec::new();
    for r in page_posts() {
        let path = sample_path(&r);
        let url = format!("{}{path}", t.base);
        let variants: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("no token", admin.http.post(&url).form(&[("x", "1")])),
            ("an empty token", admin.http.post(&url).form(&[("csrf", "")])),
            ("a wrong token", admin.http.post(&url).form(&[("csrf", "d3JvbmctdG9rZW4td3JvbmctdG9rZW4")])),
            ("another session's token", admin.http.post(&url).form(&[("csrf", others_token.as_str())])),
            (
                "a wrong header token",
                admin.http.post(&url).header("x-csrf-token", "nope").form(&[("csrf", csrf.as_str())]),
            ),
            (
                "a wrong query token",
                admin
                    .http
                    .post(format!("{url}?csrf=nope"))
                    .multipart(reqwest::multipart::Form::new().text("csrf", csrf.clone())),
            ),
            (
                "a token only inside a multipart body",
                admin.http.post(&url).multipart(reqwest::multipart::Form::new().text("csrf", csrf.clone())),
            ),
            (
                "a foreign Origin",
                admin.http.post(&url).header("origin", "http://evil.example").form(&[("csrf", csrf.as_str())]),
            ),
            ("Origin: null", admin.http.post(&url).header("origin", "null").form(&[("csrf", csrf.as_str())])),
            (
                "a cross-site fetch",
                admin.http.post(&url).header("sec-fetch-site", "cross-site").form(&[("csrf", csrf.as_str())]),
            ),
            (
                "a look-alike Origin",
                admin
                    .http
                    .post(&url)
                    .header("origin", format!("http://{host}.evil.example"))
                    .form(&[("csrf", csrf.as_str())]),
            ),
        ];
        for (what, req) in variants {
            let before = csrf_refusals(&t).await;
            let resp = admin.send(req).await;
            let logged = csrf_refusals(&t).await - before;
            if resp.status != StatusCode::FORBIDDEN || logged != 1 {
                failures.push(format!("POST {path} with {what}: {} (refusals logged: {logged})", resp.status));
            }
        }
    }
    assert!(failures.is_empty(), "state changes that were not refused as CSRF:\n{}", failures.join("\n"));
    assert!(admin.signed_in().await, "nothing above signed the admin out");
    // The right token from the same origin passes the check (a control for the above).
    let before = csrf_refusals(&t).await;
    let r = admin.post("/notifications/read-all", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = admin
        .send(
            admin
                .http
                .post(format!("{}/lang", t.base))
                .header("origin", t.base.clone())
                .header("sec-fetch-site", "same-origin")
                .form(&[("csrf", csrf.as_str()), ("to", "zh-CN")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = admin
        .send(admin.http.post(format!("{}/notifications/read-all", t.base)).header("x-csrf-token", csrf.clone()))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "htmx sends the token as a header");
    assert_eq!(csrf_refusals(&t).await, before);
}

#[tokio::test]
async fn row_13_the_sign_in_form_carries_its_own_csrf_token() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.user("zhang", false).await;
    let mut b = Browser::new(&t);
    let form = b.get("/login").await;
    let csrf = csrf_of(&form.body).unwrap();
    assert_eq!(b.cookies.get(PRE_CSRF), Some(&csrf), "double submit: the same token in cookie and form");
    // Without the cookie (a forged cross-site form), with a wrong field, or from elsewhere.
    let mut bare = Browser::new(&t);
    let r = bare.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no cookie");
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", "guess")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a wrong field");
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no field");
    let req = b.http.post(format!("{}/login", t.base)).header("origin", "https://evil.example").form(&[
        ("login", "zhang"),
        ("password", PASSWORD),
        ("csrf", csrf.as_str()),
    ]);
    assert_eq!(b.send(req).await.status, StatusCode::FORBIDDEN, "a foreign origin");
    assert!(!b.cookies.contains_key(SESSION));
    let r = b.post("/login", &[("login", "zhang"), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the right pair signs in");
}

#[tokio::test]
async fn row_13_the_api_takes_bearer_tokens_only_never_the_session_cookie() {
    let t = company().await;
    let mut b = Browser::new(&t);
    b.sign_in("admin").await;
    let csrf = b.csrf().await;
    for (method, path, body) in [
        ("GET", "/api/v1/me", None),
        (
            "POST",
            "/api/v1/orgs",
            Some(json!({"code": "X-1", "name": "X", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"})),
        ),
        ("POST", "/api/v1/users", Some(json!({"login": "mallory", "password": "a-long-passphrase-here"}))),
    ] {
        let mut req =
            b.http.request(method.parse().unwrap(), format!("{}{path}", t.base)).header("x-csrf-token", csrf.clone());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = b.send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} with only a session cookie");
    }
    let (st, _) = t.get("/api/v1/orgs/X-1").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing was created");
}

/// What the portal holds, in a few numbers: the audit log's changes (not its records of
/// refusals and exports, which log an access rather than change anything) and the rows
/// and states of the tables people change.
async fn state_of(t: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (what, sql) in [
        (
            "changes in the audit log",
            "select count(*)::text from audit_log where action not like 'auth.%' and action not like '%.export'",
        ),
        (
            "organisations",
            "select coalesce(string_agg(code || ':' || name || ':' || coalesce(active_until::text, ''), ',' order by id), '') from org",
        ),
        (
            "records",
            "select coalesce(string_agg(id || ':' || state || ':' || version, ',' order by id), '') from record",
        ),
        ("record texts", "select count(*)::text from record_version"),
        ("reviews", "select count(*)::text from record_review"),
        ("attachments", "select count(*)::text from attachment"),
        (
            "roles",
            "select coalesce(string_agg(id || ':' || coalesce(ends_on::text, ''), ',' order by id), '') from role_assignment",
        ),
        (
            "accounts",
            "select coalesce(string_agg(login || ':' || is_admin || ':' || (disabled_at is null) || ':' || password_hash, ',' order by id), '') from app_user",
        ),
        (
            "tokens",
            "select coalesce(string_agg(id || ':' || (revoked_at is null), ',' order by id), '') from api_token",
        ),
        ("people", "select count(*)::text from person"),
        ("rules", "select count(*)::text from rule_version"),
        ("read notifications", "select count(*)::text from notification where read_at is not null"),
        ("waived duties", "select count(*)::text from duty where waived_at is not null"),
    ] {
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&t.pool)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        out.push((what.to_owned(), v));
    }
    out
}

#[tokio::test]
async fn row_13_no_get_request_changes_anything() {
    let t = company().await;
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let (rec, attachment) = record_with_attachment(&t, &mut admin, "HX-1", "A8").await;
    let mut zhang = Browser::new(&t);
    zhang.sign_in("zhang").await;
    let mut changed = Vec::new();
    for r in mounted_routes().iter().filter(|r| r.method == "get") {
        let path = sample_path(r)
            .replace("/records/1", &format!("/records/{rec}"))
            .replace("/attachments/1", &format!("/attachments/{attachment}"));
        for who in ["admin", "zhang", "api"] {
            let before = state_of(&t).await;
            let status = match who {
                "admin" => admin.get(&path).await.status,
                "zhang" => zhang.get(&path).await.status,
                _ => t.call("GET", &path, &t.admin_token, None).await.0,
            };
            let after = state_of(&t).await;
            for ((what, b), (_, a)) in before.iter().zip(&after) {
                if a != b {
                    changed.push(format!("GET {path} as {who} ({status}) changed the {what}"));
                }
            }
        }
    }
    assert!(changed.is_empty(), "GET requests that changed something:\n{}", changed.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Rows 14–16: headers on every route
// ---------------------------------------------------------------------------------------

/// Every route, requested by an anonymous visitor and by a signed-in admin (session for
/// the pages, token for the API): `(who, method, path, response)`.
async fn every_route(t: &TestApp) -> Vec<(String, String, String, Resp)> {
    let mut admin = Browser::new(t);
    admin.sign_in("admin").await;
    let csrf = admin.csrf().await;
    let mut anon = Browser::new(t);
    let anon_csrf = csrf_of(&anon.get("/login").await.body).unwrap();
    let (record, attachment) = record_with_attachment(t, &mut admin, "HX-1", "A8").await;
    let mut out = Vec::new();
    let routes = mounted_routes();
    assert!(routes.len() >= 60, "the parser found only {} routes", routes.len());
    for r in &routes {
        let path = sample_path(r)
            .replace("/records/1", &format!("/records/{record}"))
            .replace("/attachments/1", &format!("/attachments/{attachment}"));
        let url = format!("{}{path}", t.base);
        let method: reqwest::Method = r.method.to_uppercase().parse().unwrap();
        // Anonymous: every method.
        let req = anon.http.request(method.clone(), &url);
        let req = if r.is_api() { req.json(&json!({})) } else { req.form(&[("csrf", anon_csrf.as_str())]) };
        out.push(("anonymous".into(), r.method.clone(), path.clone(), anon.send(req).await));
        // Signed in: reads only, so nothing changes under the other requests.
        if r.method == "get" {
            let resp = if r.is_api() {
                read(admin.http.get(&url).bearer_auth(&t.admin_token).send().await.unwrap()).await
            } else {
                admin.get(&path).await
            };
            out.push(("admin".into(), r.method.clone(), path.clone(), resp));
        }
    }
    // A few pages that certainly answer 200, with forms, and an error page.
    for path in [
        "/",
        "/review",
        "/subtree/HGS",
        "/calendar",
        "/notifications",
        "/account/password",
        "/orgs/HX-1/records/new?rule=A8",
    ] {
        let resp = admin.get(path).await;
        assert_eq!(resp.status, StatusCode::OK, "{path}");
        out.push(("admin".into(), "get".into(), path.into(), resp));
    }
    let resp =
        admin.send(admin.http.post(format!("{}/records/999999/submit", t.base)).form(&[("csrf", csrf.as_str())])).await;
    out.push(("admin".into(), "post".into(), "/records/999999/submit".into(), resp));
    out
}

#[tokio::test]
async fn row_14_every_route_sends_a_strict_content_security_policy() {
    let t = company().await;
    let mut failures = Vec::new();
    for (who, method, path, r) in every_route(&t).await {
        let Some(csp) = r.header("content-security-policy") else {
            failures.push(format!("{method} {path} as {who}: no CSP"));
            continue;
        };
        let directives: BTreeMap<String, String> = csp
            .split(';')
            .filter_map(|d| {
                let d = d.trim();
                let (k, v) = d.split_once(' ').unwrap_or((d, ""));
                (!k.is_empty()).then(|| (k.to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let effective = |name: &str| directives.get(name).or_else(|| directives.get("default-src")).cloned();
        let script = effective("script-src").unwrap_or_default();
        let problems: Vec<&str> = [
            (script.is_empty() && !directives.contains_key("sandbox"), "no script-src or default-src"),
            (script.contains("'unsafe-inline'"), "script-src allows 'unsafe-inline'"),
            (script.contains("'unsafe-eval'"), "script-src allows 'unsafe-eval'"),
            (
                script.contains('*') || script.contains("http:") || script.contains("https:"),
                "script-src allows other hosts",
            ),
            (effective("object-src").as_deref() != Some("'none'"), "object-src is not 'none'"),
            (directives.get("base-uri").map(String::as_str) != Some("'none'"), "base-uri is not 'none'"),
            (directives.get("frame-ancestors").map(String::as_str) != Some("'none'"), "frame-ancestors is not 'none'"),
            (effective("style-src").is_some_and(|s| s.contains("'unsafe-inline'")), "style-src allows 'unsafe-inline'"),
        ]
        .into_iter()
        .filter_map(|(bad, what)| bad.then_some(what))
        .collect();
        if !problems.is_empty() {
            failures.push(format!("{method} {path} as {who} ({}): {} — {csp}", r.status, problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{} responses with a weak CSP:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn row_14_pages_carry_no_inline_script_event_handler_or_style_attribute() {
    let t = company().await;
    let rec = t.record("HX-1", "A8", "2026-03-20").await;
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let mut anon = Browser::new(&t);
    let mut pages = vec![("anonymous", "/login".to_owned(), anon.get("/login").await)];
    for r in mounted_routes().iter().filter(|r| r.method == "get" && !r.is_api() && !r.path.starts_with("/static")) {
        let path = sample_path(r).replace("/records/1", &format!("/records/{rec}"));
        pages.push(("admin", path.clone(), admin.get(&path).await));
    }
    let mut failures = Vec::new();
    let mut html_pages = 0;
    for (who, path, r) in &pages {
        if !r.header("content-type").is_some_and(|c| c.starts_with("text/html")) {
            continue;
        }
        html_pages += 1;
        let lower = r.body.to_ascii_lowercase();
        let mut i = 0;
        while let Some(at) = lower[i..].find("<script") {
            let tag_end = lower[i + at..].find('>').map(|e| i + at + e).unwrap_or(lower.len());
            let tag = &lower[i + at..tag_end];
            if !tag.contains(" src=") {
                failures.push(format!("{path} as {who}: an inline <script>"));
            }
            i = tag_end;
        }
        for needle in
            [" onclick=", " onload=", " onerror=", " onsubmit=", " onchange=", " oninput=", " style=", "javascript:"]
        {
            if lower.contains(needle) {
                failures.push(format!("{path} as {who}: {needle:?}"));
            }
        }
        for (attr, q) in [("src=\"", '"'), ("href=\"", '"'), ("action=\"", '"')] {
            for piece in lower.split(attr).skip(1) {
                let url = piece.split(q).next().unwrap_or("");
                if (url.starts_with("http://") || url.starts_with("https://") || url.starts_with("//"))
                    && !url.contains("127.0.0.1")
                {
                    failures.push(format!("{path} as {who}: loads from another site: {url}"));
                }
            }
        }
    }
    assert!(html_pages >= 15, "only {html_pages} HTML pages were looked at");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn row_15_every_route_sends_nosniff_a_referrer_policy_frame_options_and_a_charset() {
    let t = company().await;
    let mut failures = Vec::new();
    for (who, method, path, r) in every_route(&t).await {
        let what = format!("{method} {path} as {who} ({})", r.status);
        if r.header("x-content-type-options") != Some("nosniff") {
            failures.push(format!("{what}: no X-Content-Type-Options: nosniff"));
        }
        let referrer = r.header("referrer-policy").unwrap_or("");
        if !["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"].contains(&referrer) {
            failures.push(format!("{what}: Referrer-Policy {referrer:?}"));
        }
        if !matches!(r.header("x-frame-options").map(str::to_ascii_uppercase).as_deref(), Some("DENY" | "SAMEORIGIN")) {
            failures.push(format!("{what}: no X-Frame-Options"));
        }
        if r.header("strict-transport-security").is_some() {
            failures.push(format!("{what}: HSTS over plain HTTP (the public URL is not https)"));
        }
        if r.header("server").is_some_and(|s| s.chars().any(|c| c.is_ascii_digit())) {
            failures.push(format!("{what}: the Server header tells a version"));
        }
        let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
        if !r.body.is_empty() {
            let textual = ct.starts_with("text/") || ct.contains("xml") || ct.contains("javascript");
            if ct.is_empty() {
                failures.push(format!("{what}: a body without a Content-Type"));
            } else if textual && !ct.contains("charset=utf-8") {
                failures.push(format!("{what}: {ct} without charset=utf-8"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn row_16_every_signed_in_route_says_no_store() {
    let t = company().await;
    let mut failures = Vec::new();
    for (who, method, path, r) in every_route(&t).await {
        if path.starts_with("/static/") {
            continue;
        }
        let cc = r.header("cache-control").unwrap_or("").to_ascii_lowercase();
        if !cc.split(',').any(|d| d.trim() == "no-store") {
            failures.push(format!("{method} {path} as {who} ({}): Cache-Control {cc:?}", r.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Row 21: output escaping
// ---------------------------------------------------------------------------------------

const XSS: [&str; 4] = [
    "<script>alert('xss')</script>",
    "\"><img src=x onerror=alert(1)>",
    "'><svg/onload=alert(2)>",
    "</title><script>alert(3)</script>",
];

#[tokio::test]
async fn row_21_payloads_in_every_field_render_as_text() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    let name = |i: usize| format!("支部{i}{}", XSS[i % XSS.len()]);
    let (st, body) = t
        .post(
            "/api/v1/orgs",
            json!({"code": "R", "name": name(0), "kind": "committee", "parent": null, "active_from": "2020-01-01"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = t
        .post(
            "/api/v1/orgs",
            json!({"code": "B", "name": name(1), "kind": "branch", "parent": "R", "active_from": "2020-01-01"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    t.install("ideology-company", "2026-01-01", None).await;
    let (st, body) = t.post("/api/v1/users", json!({"login": "zhang", "password": PASSWORD, "name": name(2)})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    t.grant("zhang", "B", "secretary").await;
    t.grant("zhang", "B", "member").await;
    let (st, rec) = t
        .post(
            "/api/v1/orgs/B/records",
            json!({"rule": "A8", "occurred_on": "2026-03-20", "title": XSS[0], "body": XSS.join("\n"), "attendees": XSS}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rec}");
    let id = rec["id"].as_str().unwrap();
    let (st, body) =
        t.post(&format!("/api/v1/records/{id}/review"), json!({"decision": "return", "comment": XSS[3]})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let duty = t.get("/api/v1/orgs/B/duties?period=2026-Q1").await.1[0]["id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let mut admin = Browser::new(&t);
    admin.sign_in("admin").await;
    let mut shown = 0;
    for (who, path) in [
        ("zhang", "/".to_owned()),
        ("zhang", format!("/records/{id}")),
        ("zhang", format!("/records/{id}/edit")),
        ("zhang", format!("/records/{id}/versions/1")),
        ("zhang", format!("/duties/{duty}")),
        ("zhang", "/subtree/B".to_owned()),
        ("zhang", "/calendar".to_owned()),
        ("admin", "/review?scope=all".to_owned()),
        ("admin", "/subtree/R".to_owned()),
        ("admin", "/admin/orgs".to_owned()),
        ("admin", "/admin/orgs/B".to_owned()),
        ("admin", "/admin/users".to_owned()),
        ("admin", "/admin/audit".to_owned()),
    ] {
        let r = if who == "admin" { admin.get(&path).await } else { b.get(&path).await };
        assert_eq!(r.status, StatusCode::OK, "{path}");
        for p in XSS {
            let bare = p.trim_start_matches(['"', '\'', '>']);
            assert!(!r.body.contains(bare), "{path} as {who} carries {bare:?} unescaped");
        }
        if r.body.contains("&lt;script&gt;") || r.body.contains("&lt;img") || r.body.contains("&#60;") {
            shown += 1;
        }
    }
    assert!(shown >= 8, "the payloads show as text on the pages ({shown})");
    // The API answers JSON, where the text is data.
    let r =
        read(t.http.get(format!("{}/api/v1/records/{id}", t.base)).bearer_auth(&t.admin_token).send().await.unwrap())
            .await;
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["title"], XSS[0]);
}

// ---------------------------------------------------------------------------------------
// Rows 25–27: logging and errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn row_25_sign_ins_failures_and_refusals_are_logged_with_who_what_and_when() {
    let t = company().await;
    let token = t.user("wang", false).await;
    t.set_now("2026-03-26T10:00:00+08:00");
    let at = common::instant("2026-03-26T02:00:00Z");
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    let rows = audit_rows(&t, "auth.login").await;
    let (actor, object, _, when, ip) = rows.last().expect("a sign-in is logged");
    assert_eq!((actor.as_str(), object.as_str(), *when), ("zhang", "zhang", at), "who, what, when (UTC)");
    assert_eq!(ip.as_deref(), Some("127.0.0.1"), "and from where");
    Browser::new(&t).sign_in_with("zhang", "wrong-password-here").await;
    Browser::new(&t).sign_in_with("nobody", "wrong-password-here").await;
    let failed = audit_rows(&t, "auth.login_failed").await;
    let objects: Vec<&str> = failed.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(objects, ["zhang", "nobody"], "failures name the login tried");
    assert!(failed.iter().all(|r| r.3 == at && r.4.is_some()));
    assert!(failed.iter().all(|r| !r.2.to_string().contains("wrong-password")), "never the password tried");
    let csrf = b.csrf().await;
    b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(audit_rows(&t, "auth.logout").await.last().map(|r| r.0.as_str()), Some("zhang"));
    // Throttled attempts.
    let mut m = Browser::new(&t);
    for _ in 0..12 {
        m.sign_in_with("li", "guess-guess-guess").await;
    }
    assert!(!audit_rows(&t, "auth.throttled").await.is_empty(), "slowed attempts are logged");
    // Refusals: a forged form, an admin page, an admin API call.
    let mut z = Browser::new(&t);
    z.sign_in("zhang").await;
    z.post("/notifications/read-all", &[("csrf", "forged")]).await;
    let refused = audit_rows(&t, "auth.refused").await;
    assert!(
        refused.iter().any(|r| r.0 == "zhang" && r.1 == "POST /notifications/read-all" && r.2["why"] == "csrf"),
        "a CSRF refusal names who and what: {refused:?}"
    );
    let mut missing = Vec::new();
    for path in ["/admin", "/admin/users", "/admin/orgs", "/admin/systems"] {
        let before = audit_rows(&t, "auth.refused").await.len();
        let r = z.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        if audit_rows(&t, "auth.refused").await.len() != before + 1 {
            missing.push(format!("GET {path} (page, 403)"));
        }
    }
    for path in ["/api/v1/users", "/api/v1/orgs", "/api/v1/systems", "/api/v1/settings"] {
        let before = audit_rows(&t, "auth.refused").await.len();
        let (st, _) = t.call("GET", path, &token, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}");
        if audit_rows(&t, "auth.refused").await.len() != before + 1 {
            missing.push(format!("GET {path} (API, 403)"));
        }
    }
    assert!(missing.is_empty(), "refusals of admin routes that leave no audit row: {missing:?}");
}

#[tokio::test]
async fn row_25_a_refused_action_on_a_record_is_logged() {
    let t = company().await;
    let id = t.record("HX-1", "A8", "2026-03-20").await;
    let mut z = Browser::new(&t);
    z.sign_in("zhang").await;
    let csrf = z.csrf().await;
    let before = audit_rows(&t, "auth.refused").await.len();
    // zhang may see the record of his branch but not review it.
    let r = z.post(&format!("/records/{id}/review"), &[("decision", "accept"), ("comment", ""), ("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let after = audit_rows(&t, "auth.refused").await;
    assert_eq!(after.len(), before + 1, "the refused review is in the audit log: {after:?}");
    assert_eq!(after.last().unwrap().0, "zhang");
}

#[tokio::test]
async fn row_25_a_look_at_another_organisations_record_is_logged() {
    let t = company().await;
    t.user("wang", false).await;
    t.grant("wang", "HX-2", "secretary").await;
    let id = t.record("HX-1", "A8", "2026-03-20").await;
    let mut w = Browser::new(&t);
    w.sign_in("wang").await;
    let before = audit_rows(&t, "auth.refused").await.len();
    let r = w.get(&format!("/records/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another branch's record is not found");
    let after = audit_rows(&t, "auth.refused").await;
    assert_eq!(after.len(), before + 1, "the attempt is in the audit log: {after:?}");
}

/// Everything the process logs (through `tracing`, at every level, in text and in JSON),
/// from the moment the first test asks for it.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let buf = Arc::new(Mutex::new(Vec::new()));
        #[derive(Clone)]
        struct W(Arc<Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = W(buf.clone());
        let w2 = w.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || w.clone()))
            .with(tracing_subscriber::fmt::layer().json().with_writer(move || w2.clone()))
            .with(tracing_subscriber::EnvFilter::new(
                "trace,hyper=off,hyper_util=off,reqwest=off,h2=off,tokio=off,runtime=off,mio=off,want=off",
            ));
        tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");
        buf
    })
    .clone()
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

#[tokio::test]
async fn row_26_no_password_session_cookie_or_token_reaches_the_logs() {
    captured_logs();
    let t = company().await;
    let password = "Unmistakable-Passphrase-7731";
    let (st, _) = create_user(&t, "chen", password).await;
    assert_eq!(st, StatusCode::CREATED);
    t.grant("chen", "HX-2", "secretary").await;
    let mut b = Browser::new(&t);
    let r = b.sign_in_with("chen", password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cookie = b.cookies[SESSION].clone();
    let csrf = b.csrf().await;
    for path in ["/", "/review", "/subtree/HX-2", "/records/999", "/admin", "/orgs/HX-1/records/new?rule=A8"] {
        b.get(path).await;
    }
    let new = "Another-Unmistakable-Phrase-4417";
    b.post("/account/password", &[("current", password), ("new", new), ("confirm", new), ("csrf", &csrf)]).await;
    b.post(
        "/account/password",
        &[("current", "Wrong-Guess-Phrase-0001"), ("new", new), ("confirm", new), ("csrf", &csrf)],
    )
    .await;
    Browser::new(&t).sign_in_with("chen", "Wrong-Guess-Phrase-0002").await;
    let (_, tok) = t.call("POST", "/api/v1/tokens", &t.admin_token, Some(json!({"label": "log test"}))).await;
    let api_token = tok["token"].as_str().unwrap_or(&t.admin_token).to_owned();
    t.call("GET", "/api/v1/me", &api_token, None).await;
    t.call("GET", "/api/v1/orgs/NOPE", &api_token, None).await;
    t.call(
        "POST",
        "/api/v1/users",
        &t.admin_token,
        Some(json!({"login": "li2", "password": "Yet-Another-Phrase-9090"})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = logs_text();
    assert!(!logs.is_empty(), "something was logged");
    for (what, secret) in [
        ("the password", password),
        ("the new password", new),
        ("a wrong password", "Wrong-Guess-Phrase-0001"),
        ("a wrong sign-in password", "Wrong-Guess-Phrase-0002"),
        ("a password sent to the API", "Yet-Another-Phrase-9090"),
        ("the session cookie", cookie.as_str()),
        ("the admin's API token", t.admin_token.as_str()),
        ("a new API token", api_token.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs");
    }
    // Nor in the audit log.
    let audit: Vec<String> =
        sqlx::query_scalar("select concat_ws(' ', actor, action, object_id, detail::text) from audit_log")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    let audit = audit.join("\n");
    for secret in [password, new, "Wrong-Guess-Phrase-0001", "Wrong-Guess-Phrase-0002", &cookie, &api_token] {
        assert!(!audit.contains(secret), "a secret is in the audit log");
    }
}

#[tokio::test]
async fn row_26_log_injection_is_neutralised() {
    captured_logs();
    let t = company().await;
    let forged = "FORGED-ENTRY-5521";
    let login = format!(
        "x\r\n2026-03-26T00:00:00Z  INFO zerenzhi: {forged} admin signed in\n{{\"level\":\"INFO\",\"msg\":\"{forged}\"}}"
    );
    Browser::new(&t).sign_in_with(&login, "whatever-password").await;
    let mut b = Browser::new(&t);
    b.get(&format!("/records/1%0d%0a{forged}")).await;
    b.get(&format!("/login?next=/%0a{forged}")).await;
    t.call("GET", &format!("/api/v1/orgs/A%0a{forged}"), &t.admin_token, None).await;
    t.call(
        "POST",
        "/api/v1/orgs",
        &t.admin_token,
        Some(json!({"code": format!("C\n{forged}"), "name": "x", "kind": "branch", "active_from": "2026-01-01"})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = logs_text();
    for line in logs.lines() {
        let line = line.trim_start();
        assert!(
            !(line.contains(forged)
                && (line.starts_with("2026-03-26T00:00:00Z") || line.starts_with("{\"level\":\"INFO\",\"msg\""))),
            "a forged log line: {line}"
        );
    }
    // The audit log keeps the login tried as one value.
    let rows = audit_rows(&t, "auth.login_failed").await;
    assert!(rows.iter().all(|r| !r.1.contains('\n') || r.1.len() <= 64), "{rows:?}");
}

#[tokio::test]
async fn row_27_a_server_error_shows_a_generic_page_without_sql_panic_text_or_paths() {
    let t = company().await;
    let id = t.record("HX-1", "A8", "2026-03-20").await;
    let mut b = Browser::new(&t);
    b.sign_in("zhang").await;
    // Break the database under the running portal.
    sqlx::query("alter table record_version rename to record_version_broken").execute(&t.pool).await.unwrap();
    let page = b.get(&format!("/records/{id}")).await;
    let (st, api) = t.get(&format!("/api/v1/records/{id}")).await;
    sqlx::query("alter table duty rename to duty_broken").execute(&t.pool).await.unwrap();
    let workbench = b.get("/").await;
    let (st2, api2) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    sqlx::query("alter table notification rename to notification_broken").execute(&t.pool).await.unwrap();
    let any_page = b.get("/review").await;
    for (what, status, body) in [
        ("the record page", page.status, page.body.clone()),
        ("the workbench", workbench.status, workbench.body.clone()),
        ("a page whose session cannot load", any_page.status, any_page.body.clone()),
        ("the API's record", st, api.to_string()),
        ("the API's duties", st2, api2.to_string()),
    ] {
        assert!(status.is_server_error(), "{what}: {status}");
        let lower = body.to_lowercase();
        for leak in [
            "record_version",
            "duty_broken",
            "notification_broken",
            "relation",
            "sqlx",
            "select ",
            "postgres",
            "panicked",
            "stack backtrace",
            "/work/",
            "src/",
            ".rs:",
            "error returned from database",
        ] {
            assert!(!lower.contains(leak), "{what} shows {leak:?}: {body}");
        }
    }
    assert!(page.body.contains("<html") && page.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(api["error"]["code"], "internal", "the API says only that it failed: {api}");
}

#[tokio::test]
async fn row_27_trace_is_off_and_unknown_paths_show_nothing_of_the_server() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    for path in ["/", "/login", "/api/v1/me", "/healthz", "/static/app.css"] {
        let r = read(
            t.http
                .request("TRACE".parse().unwrap(), format!("{}{path}", t.base))
                .header("x-probe", "echo-me-7731")
                .bearer_auth(&t.admin_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            matches!(r.status, StatusCode::METHOD_NOT_ALLOWED | StatusCode::FORBIDDEN),
            "TRACE {path} is not served: {}",
            r.status
        );
        assert!(
            !r.body.contains("echo-me-7731") && !r.body.contains(&t.admin_token),
            "TRACE {path} echoes the request"
        );
    }
    for path in [
        "/no/such/page",
        "/records/abc/zzz",
        "/api/v1/no-such-route",
        "/static/../../etc/passwd",
        "/static/%2e%2e/Cargo.toml",
    ] {
        let r = read(t.http.get(format!("{}{path}", t.base)).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        for leak in ["axum", "tokio", "/work/", "src/", "panicked", "[package]", "root:"] {
            assert!(!r.body.contains(leak), "{path} shows {leak:?}");
        }
    }
}

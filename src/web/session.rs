//! Sessions for the pages: a random id in an HttpOnly cookie, its hash in PostgreSQL (so
//! every app server shares them), idle and absolute timeouts, a CSRF token per session,
//! and the check of that token (and of the request's origin) on every state change.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::Digest;

use crate::app::App;
use crate::domain::access::{Grant, Principal};
use crate::secret;
use crate::web::i18n::{Locale, Tr};

/// The session cookie's name; `__Host-` over HTTPS, so no subdomain can set it.
pub fn session_cookie(https: bool) -> &'static str {
    if https { "__Host-zrz_session" } else { "zrz_session" }
}

/// The cookie holding the CSRF token of a visitor who is not signed in (double submit).
pub fn pre_csrf_cookie(https: bool) -> &'static str {
    if https { "__Host-zrz_csrf" } else { "zrz_csrf" }
}

pub const LANG_COOKIE: &str = "zrz_lang";

/// Write `last_seen_at` at most this often per session.
const LAST_SEEN_EVERY_SECS: i64 = 60;

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the portal's flags: HttpOnly, SameSite=Lax, Path=/, and
/// Secure over HTTPS. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, https: bool, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if https {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A signed-in session, loaded once per request by [`load`].
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub csrf: String,
    pub principal: Principal,
    pub name: String,
    pub locale: Option<Locale>,
    pub unread: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: i64,
    csrf_token: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    login: String,
    person_id: i64,
    is_admin: bool,
    locale: Option<String>,
    name: String,
    unread: i64,
    grants: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct GrantRow {
    role: String,
    path: Vec<i64>,
}

/// The session behind a cookie value, if it is live at `now`; a session past its idle or
/// absolute timeout is deleted.
async fn find(app: &App, raw_id: &str, now: DateTime<Utc>, today: NaiveDate) -> sqlx::Result<Option<Session>> {
    if raw_id.is_empty() || raw_id.len() > 100 {
        return Ok(None);
    }
    let id_hash = secret::token_hash(raw_id);
    let mut conn = app.hot_reads.acquire().await?;
    let row: Option<SessionRow> = sqlx::query_as(
        "select s.user_id, s.csrf_token, s.created_at, s.last_seen_at, u.login, u.person_id, u.is_admin, u.locale,
                p.name,
                (select count(*) from notification n where n.user_id = u.id and n.read_at is null) as unread,
                coalesce((select json_agg(json_build_object('role', ra.role, 'path', o.path))
                          from role_assignment ra join org o on o.id = ra.org_id
                          where ra.person_id = u.person_id and ra.starts_on <= $2
                            and (ra.ends_on is null or ra.ends_on >= $2)), '[]'::json) as grants
         from session s join app_user u on u.id = s.user_id join person p on p.id = u.person_id
         where s.id_hash = $1 and u.disabled_at is null",
    )
    .bind(&id_hash)
    .bind(today)
    .fetch_optional(&mut *conn)
    .await?;
    conn.release();
    let Some(row) = row else { return Ok(None) };
    let idle = Duration::minutes(app.config.session_idle_minutes);
    let absolute = Duration::hours(app.config.session_max_hours);
    if now - row.last_seen_at > idle || now - row.created_at > absolute || now < row.created_at - Duration::hours(1) {
        sqlx::query("delete from session where id_hash = $1").bind(&id_hash).execute(&app.pool).await?;
        return Ok(None);
    }
    if (now - row.last_seen_at).num_seconds() >= LAST_SEEN_EVERY_SECS {
        sqlx::query("update session set last_seen_at = $2 where id_hash = $1")
            .bind(&id_hash)
            .bind(now)
            .execute(&app.pool)
            .await?;
    }
    let grants: Vec<GrantRow> = serde_json::from_value(row.grants).unwrap_or_default();
    Ok(Some(Session {
        id_hash,
        csrf: row.csrf_token,
        principal: Principal {
            user_id: row.user_id,
            person_id: row.person_id,
            login: row.login,
            is_admin: row.is_admin,
            grants: grants
                .into_iter()
                .filter_map(|g| Some(Grant { role: g.role.parse().ok()?, org_path: g.path }))
                .collect(),
        },
        name: row.name,
        locale: row.locale.as_deref().and_then(Locale::parse),
        unread: row.unread,
    }))
}

/// Create a session for a user who just signed in; returns the cookie value (the raw id).
pub async fn create(
    app: &App,
    user_id: i64,
    now: DateTime<Utc>,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<String> {
    let raw = secret::random_token(32);
    sqlx::query(
        "insert into session (id_hash, user_id, csrf_token, created_at, last_seen_at, ip, user_agent)
         values ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(secret::token_hash(&raw))
    .bind(user_id)
    .bind(secret::random_token(32))
    .bind(now)
    .bind(ip)
    .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
    .execute(&app.pool)
    .await?;
    Ok(raw)
}

/// End one session.
pub async fn delete(app: &App, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("delete from session where id_hash = $1").bind(id_hash).execute(&app.pool).await?;
    Ok(())
}

/// The request's instant, locale and session, put in the request's extensions by [`load`].
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub locale: Locale,
    pub session: Option<Session>,
    pub ip: Option<String>,
}

/// Middleware for the pages: load the session (one query), pick the language, and refuse a
/// state change that lacks the right CSRF token or comes from another origin (403).
pub async fn load(axum::extract::State(app): axum::extract::State<App>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let now = app.now();
    let today = app.today_at(now);
    let https = app.config.https();
    let session = match cookie(&parts.headers, session_cookie(https)) {
        Some(raw) => match find(&app, raw, now, today).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("loading a session failed: {e:#}");
                return crate::web::pages::error_page(StatusCode::SERVICE_UNAVAILABLE, Locale::Zh);
            }
        },
        None => None,
    };
    let locale = pick_locale(&parts, session.as_ref());
    let ip = crate::web::client_ip(&parts);
    let ctx = RequestContext { now, today, locale, session, ip };
    if let Some(s) = &ctx.session {
        crate::web::refusal::identify(&parts.extensions, &s.principal);
    }

    let changes_state = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let body = if changes_state {
        match check_csrf(&app, &parts, body, &ctx).await {
            Ok(body) => body,
            Err(mut resp) => {
                resp.extensions_mut().insert(crate::web::refusal::Refused("csrf"));
                return resp;
            }
        }
    } else {
        body
    };
    parts.extensions.insert(ctx);
    next.run(Request::from_parts(parts, body)).await
}

fn pick_locale(parts: &Parts, session: Option<&Session>) -> Locale {
    let from_query = parts.uri.query().and_then(|q| {
        q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "lang").and_then(|(_, v)| Locale::parse(v))
    });
    from_query
        .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Locale::parse))
        .or_else(|| session.and_then(|s| s.locale))
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::from_accept_language)
        })
        .unwrap_or_default()
}

/// Largest form body read to find its CSRF field (uploads carry the token elsewhere).
const FORM_LIMIT: usize = 2 * 1024 * 1024;

async fn check_csrf(app: &App, parts: &Parts, body: Body, ctx: &RequestContext) -> Result<Body, Response> {
    let forbidden = || crate::web::pages::error_page(StatusCode::FORBIDDEN, ctx.locale);
    if !same_origin(parts) {
        return Err(forbidden());
    }
    let expected: String = match &ctx.session {
        Some(s) => s.csrf.clone(),
        None => match cookie(&parts.headers, pre_csrf_cookie(app.config.https())) {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => return Err(forbidden()),
        },
    };
    let header_token = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let query_token = parts.uri.query().and_then(|q| {
        q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "csrf").map(|(_, v)| v.to_owned())
    });
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let (given, body) = match (header_token.or(query_token), is_form) {
        (Some(t), _) => (t, body),
        (None, true) => {
            let bytes = axum::body::to_bytes(body, FORM_LIMIT)
                .await
                .map_err(|_| crate::web::pages::error_page(StatusCode::PAYLOAD_TOO_LARGE, ctx.locale))?;
            let token = form_urlencoded_field(&bytes, "csrf").unwrap_or_default();
            (token, Body::from(bytes))
        }
        (None, false) => return Err(forbidden()),
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) { Ok(body) } else { Err(forbidden()) }
}

/// Whether a state-changing request comes from a page of this site: a foreign `Origin`
/// or a cross-site `Sec-Fetch-Site` is refused.
fn same_origin(parts: &Parts) -> bool {
    if let Some(site) = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site == "cross-site"
    {
        return false;
    }
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    if origin == "null" {
        return false;
    }
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    origin_host.eq_ignore_ascii_case(host)
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare hashes so that neither length nor content leaks through timing.
    let ha = sha2::Sha256::digest(a);
    let hb = sha2::Sha256::digest(b);
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 && !a.is_empty()
}

/// A signed-in user on a page: the principal, the session's CSRF token, the language.
/// Without a live session the request is sent to the sign-in page.
pub struct PageUser {
    pub principal: Principal,
    pub name: String,
    pub csrf: String,
    pub tr: Tr,
    pub unread: i64,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub ip: Option<String>,
    pub session_hash: Vec<u8>,
}

impl PageUser {
    /// An audit entry for something this user did on this request.
    pub fn audit_entry<'a>(
        &'a self,
        action: &'a str,
        object: (&'a str, String),
        org_id: Option<i64>,
        detail: serde_json::Value,
    ) -> crate::db::audit::Entry<'a> {
        crate::db::audit::Entry::by(&self.principal, self.now, self.ip.as_deref(), action, object, org_id, detail)
    }
}

impl FromRequestParts<App> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<PageUser, Response> {
        let ctx = parts.extensions.get::<RequestContext>().cloned();
        match ctx {
            Some(RequestContext { now, today, locale, session: Some(s), ip }) => Ok(PageUser {
                principal: s.principal,
                name: s.name,
                csrf: s.csrf,
                tr: Tr::new(locale),
                unread: s.unread,
                now,
                today,
                ip,
                session_hash: s.id_hash,
            }),
            _ => Err(to_sign_in(parts)),
        }
    }
}

/// The response that sends a visitor to the sign-in page and back here afterwards.
fn to_sign_in(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target = format!("/login?next={}", percent_encode(next));
    if parts.headers.contains_key("hx-request") {
        let mut resp = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            resp.headers_mut().insert("hx-redirect", v);
        }
        return resp;
    }
    Redirect::to(&target).into_response()
}

/// Percent-encode everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The request context of anyone, signed in or not (sign-in page, errors).
pub struct Visitor(pub RequestContext);

impl FromRequestParts<App> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Visitor, Response> {
        match parts.extensions.get::<RequestContext>() {
            Some(ctx) => Ok(Visitor(ctx.clone())),
            None => {
                let now = app.now();
                Ok(Visitor(RequestContext {
                    now,
                    today: app.today_at(now),
                    locale: Locale::Zh,
                    session: None,
                    ip: None,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found_in_a_form_body() {
        assert_eq!(form_urlencoded_field(b"name=%E5%BC%A0+%E4%B8%89&csrf=a%2Bb", "csrf").as_deref(), Some("a+b"));
        assert_eq!(form_urlencoded_field(b"name=x", "csrf"), None);
    }

    #[test]
    fn tokens_compare_equal_only_when_equal_and_present() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"", b""));
    }
}

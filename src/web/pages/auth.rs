//! Signing in and out, changing one's password, and choosing the language.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, PageResultExt, local_path, render, render_status};
use crate::app::App;
use crate::db::{audit, users};
use crate::error::AppError;
use crate::secret;
use crate::web::i18n::{Locale, Tr};
use crate::web::session::{self, LANG_COOKIE, PageUser, Visitor, cookie, pre_csrf_cookie, session_cookie, set_cookie};

/// Failed sign-ins allowed per login, and per client address, in the window.
const MAX_FAILURES_PER_LOGIN: i64 = 10;
const MAX_FAILURES_PER_IP: i64 = 50;
const FAILURE_WINDOW_MINUTES: i64 = 15;

pub fn router() -> Router<App> {
    Router::new()
        .route("/login", get(sign_in_form).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/account/password", get(password_form).post(change_password))
        .route("/lang", post(switch_language))
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct SignInPage {
    t: Tr,
    csrf: String,
    login: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
    #[serde(default)]
    bye: Option<String>,
}

/// The sign-in form, with a CSRF token in a cookie and the form (double submit).
async fn sign_in_form(
    State(app): State<App>,
    Visitor(ctx): Visitor,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    if ctx.session.is_some() {
        return Redirect::to(&local_path(q.next.as_deref())).into_response();
    }
    let https = app.config.https();
    let existing = cookie(&headers, pre_csrf_cookie(https)).filter(|c| c.len() >= 22).map(str::to_owned);
    let csrf = existing.clone().unwrap_or_else(|| secret::random_token(32));
    let t = Tr::new(ctx.locale);
    let notice = q.bye.map(|_| t.t("auth.signed_out").to_owned());
    let page = SignInPage {
        t,
        csrf: csrf.clone(),
        login: String::new(),
        next: local_path(q.next.as_deref()),
        error: None,
        notice,
    };
    let mut resp = render(&page);
    if existing.is_none() {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(pre_csrf_cookie(https), &csrf, https, None));
    }
    resp
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

async fn sign_in(
    State(app): State<App>,
    Visitor(ctx): Visitor,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let t = Tr::new(ctx.locale);
    let https = app.config.https();
    let login = form.login.trim().to_lowercase();
    let ip = ctx.ip.clone().unwrap_or_else(|| "unknown".to_owned());
    let now = ctx.now;
    let again = |error: String, status: StatusCode| {
        let page = SignInPage {
            t,
            csrf: form.csrf.clone(),
            login: form.login.chars().take(100).collect(),
            next: local_path(form.next.as_deref()),
            error: Some(error),
            notice: None,
        };
        render_status(status, &page)
    };
    let mut conn = match app.pool.acquire().await {
        Ok(c) => c,
        Err(_) => return super::error_page(StatusCode::SERVICE_UNAVAILABLE, ctx.locale),
    };
    let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
    let (by_login, by_ip) = match users::recent_failures(&mut conn, &login, &ip, since).await {
        Ok(n) => n,
        Err(_) => return super::error_page(StatusCode::SERVICE_UNAVAILABLE, ctx.locale),
    };
    if by_login >= MAX_FAILURES_PER_LOGIN || by_ip >= MAX_FAILURES_PER_IP {
        let _ = audit::write(&mut conn, auth_entry(now, None, &login, "auth.throttled", &ip)).await;
        let mut resp = again(t.f1("auth.throttled", FAILURE_WINDOW_MINUTES), StatusCode::TOO_MANY_REQUESTS);
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from((FAILURE_WINDOW_MINUTES * 60) as u32));
        return resp;
    }
    let user = users::find_by_login(&mut conn, &login).await.ok().flatten();
    let stored = user.as_ref().filter(|u| u.disabled_at.is_none()).map(|u| u.password_hash.clone());
    let password = form.password.clone();
    // Hashing takes tens of milliseconds: keep it off the async workers. Unknown logins
    // are checked against a dummy hash so that they take as long.
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.as_deref().unwrap_or(secret::dummy_hash());
        secret::verify_password(&password, hash) && stored.is_some()
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        let _ = users::record_failure(&mut conn, &login, &ip, now).await;
        let _ = audit::write(&mut conn, auth_entry(now, None, &login, "auth.login_failed", &ip)).await;
        return again(t.t("auth.bad_credentials").to_owned(), StatusCode::UNPROCESSABLE_ENTITY);
    };
    // A new session id at every sign-in; the old session (if any) ends.
    if let Some(old) = &ctx.session {
        let _ = session::delete(&app, &old.id_hash).await;
    }
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let raw = match session::create(&app, user.id, now, Some(&ip), agent).await {
        Ok(raw) => raw,
        Err(_) => return super::error_page(StatusCode::SERVICE_UNAVAILABLE, ctx.locale),
    };
    let _ = audit::write(&mut conn, auth_entry(now, Some(user.id), &user.login, "auth.login", &ip)).await;
    let mut resp = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(session_cookie(https), &raw, https, None));
    h.append(header::SET_COOKIE, set_cookie(pre_csrf_cookie(https), "", https, Some(0)));
    resp
}

fn auth_entry<'a>(
    now: chrono::DateTime<chrono::Utc>,
    user_id: Option<i64>,
    login: &'a str,
    action: &'a str,
    ip: &'a str,
) -> audit::Entry<'a> {
    audit::Entry {
        at: now,
        actor_id: user_id,
        actor: if user_id.is_some() { login } else { "anonymous" },
        action,
        object_type: "login",
        object_id: login.chars().take(64).collect(),
        org_id: None,
        detail: json!({}),
        ip: Some(ip),
    }
}

async fn sign_out(State(app): State<App>, user: PageUser) -> Response {
    let _ = session::delete(&app, &user.session_hash).await;
    if let Ok(mut conn) = app.pool.acquire().await {
        let ip = user.ip.clone().unwrap_or_default();
        let _ = audit::write(
            &mut conn,
            auth_entry(user.now, Some(user.principal.user_id), &user.principal.login, "auth.logout", &ip),
        )
        .await;
    }
    let https = app.config.https();
    let mut resp = Redirect::to("/login?bye=1").into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(session_cookie(https), "", https, Some(0)));
    resp
}

#[derive(Template)]
#[template(path = "auth/password.html")]
struct PasswordPage {
    t: Tr,
    layout: Layout,
    errors: Vec<(&'static str, String)>,
    done: bool,
}

impl PasswordPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

async fn password_form(user: PageUser) -> Response {
    let page =
        PasswordPage { t: user.tr, layout: Layout::new(&user, "", "/account/password"), errors: vec![], done: false };
    render(&page)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

async fn change_password(
    State(app): State<App>,
    user: PageUser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let me = users::find_by_id(&mut conn, user.principal.user_id)
        .await
        .page(&user)?
        .ok_or_else(|| PageError(AppError::Unauthenticated, t.locale))?;
    let stored = me.password_hash.clone();
    let current = form.current.clone();
    let current_ok =
        tokio::task::spawn_blocking(move || secret::verify_password(&current, &stored)).await.unwrap_or(false);
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    if !current_ok {
        errors.push(("current", t.t("auth.wrong_current").to_owned()));
    }
    if form.new != form.confirm {
        errors.push(("confirm", t.t("auth.mismatch").to_owned()));
    }
    if let Err(AppError::BadInput { message, .. }) = users::check_password(&form.new) {
        let key = if message.contains("at least") {
            "auth.too_short"
        } else if message.contains("at most") {
            "auth.too_long"
        } else {
            "auth.too_common"
        };
        errors.push(("new", t.t(key).to_owned()));
    }
    if !errors.is_empty() {
        let page = PasswordPage { t, layout: Layout::new(&user, "", "/account/password"), errors, done: false };
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let mut tx = app.pool.begin().await.page(&user)?;
    users::set_password(&mut tx, me.id, &form.new, user.now).await.page(&user)?;
    let ip = user.ip.clone().unwrap_or_default();
    audit::write(&mut tx, auth_entry(user.now, Some(me.id), &me.login, "auth.password_changed", &ip))
        .await
        .page(&user)?;
    tx.commit().await.page(&user)?;
    // Every session ended, this one too: continue in a fresh one.
    let https = app.config.https();
    let raw = session::create(&app, me.id, user.now, user.ip.as_deref(), None).await.page(&user)?;
    let page = PasswordPage { t, layout: Layout::new(&user, "", "/account/password"), errors: vec![], done: true };
    let mut resp = render(&page);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(session_cookie(https), &raw, https, None));
    Ok(resp)
}

#[derive(Deserialize)]
struct LanguageForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    next: Option<String>,
}

/// Choose the language: remembered in a cookie, and on the account when signed in.
async fn switch_language(State(app): State<App>, Visitor(ctx): Visitor, Form(form): Form<LanguageForm>) -> Response {
    let locale = Locale::parse(&form.to).unwrap_or_default();
    if let Some(s) = &ctx.session
        && let Ok(mut conn) = app.pool.acquire().await
    {
        let _ = users::set_locale(&mut conn, s.principal.user_id, locale.tag()).await;
    }
    let mut resp = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let https = app.config.https();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(LANG_COOKIE, locale.tag(), https, Some(365 * 24 * 3600)));
    resp
}

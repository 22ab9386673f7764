//! `/api/v1` for accounts, API tokens, settings and the audit log: the JSON counterparts
//! of the pages in `pages/admin_users.rs`. Creating an account lives in `users.rs`.
//!
//! Accounts, settings and the audit log are for admins (403 before anything is looked
//! up, and the refusal is logged). Tokens are everyone's own: a caller lists, makes and
//! revokes their own; an admin also lists (`?user=`) and revokes anyone's. Someone else's
//! token is not found (404) for anyone else.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{ApiJson, ApiUser, created, parse_date, parse_id};
use crate::app::App;
use crate::db::admin::{self, Account, AuditFilter, Cursor, SettingsDraft};
use crate::db::{audit, tree, users};
use crate::domain::time::local_midnight;
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new()
        .route("/users", get(list_users))
        .route("/users/{login}", get(get_user).patch(update_user))
        .route("/users/{login}/password", post(reset_password))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/audit", get(list_audit))
        .route("/audit/verify", post(verify_audit))
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// An API caller who is an admin; anyone else gets 403 (logged as a refusal by
/// `web::refusal`).
struct ApiAdmin(ApiUser);

impl FromRequestParts<App> for ApiAdmin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<ApiAdmin, AppError> {
        let user = ApiUser::from_request_parts(parts, app).await?;
        guard::require_admin(&user.principal)?;
        Ok(ApiAdmin(user))
    }
}

async fn write_audit(
    conn: &mut PgConnection,
    user: &ApiUser,
    action: &str,
    object: (&str, String),
    detail: Value,
) -> AppResult<()> {
    audit::write(conn, user.audit_entry(action, (object.0, object.1), None, detail)).await?;
    Ok(())
}

fn local(tz: Tz, at: DateTime<Utc>) -> DateTime<FixedOffset> {
    at.with_timezone(&tz).fixed_offset()
}

/// A page number from a query (from 1); absent is 1.
fn parse_page(page: Option<&str>) -> AppResult<i64> {
    match page.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| AppError::bad_input("page", "a page is a whole number from 1")),
    }
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct UserJson {
    id: String,
    login: String,
    name: String,
    admin: bool,
    disabled: bool,
    disabled_at: Option<DateTime<FixedOffset>>,
    /// The person the account belongs to.
    person: String,
    person_code: Option<String>,
    created_at: DateTime<FixedOffset>,
    password_changed_at: DateTime<FixedOffset>,
    last_seen_at: Option<DateTime<FixedOffset>>,
    tokens: i64,
}

fn user_json(tz: Tz, a: Account) -> UserJson {
    UserJson {
        id: a.id.to_string(),
        login: a.login,
        name: a.name,
        admin: a.is_admin,
        disabled: a.disabled_at.is_some(),
        disabled_at: a.disabled_at.map(|at| local(tz, at)),
        person: a.person_id.to_string(),
        person_code: a.person_code,
        created_at: local(tz, a.created_at),
        password_changed_at: local(tz, a.password_changed_at),
        last_seen_at: a.last_seen_at.map(|at| local(tz, at)),
        tokens: a.tokens,
    }
}

#[derive(Serialize)]
struct Listing<T> {
    items: Vec<T>,
    page: i64,
    per_page: i64,
    total: i64,
    has_more: bool,
}

#[derive(Deserialize)]
struct UsersQuery {
    q: Option<String>,
    /// `admins` or `disabled`.
    show: Option<String>,
    page: Option<String>,
}

async fn list_users(
    State(app): State<App>,
    ApiAdmin(_user): ApiAdmin,
    Query(q): Query<UsersQuery>,
) -> AppResult<Json<Listing<UserJson>>> {
    let page = parse_page(q.page.as_deref())?;
    let filter = match q.show.as_deref().map(str::trim) {
        None | Some("") | Some("all") => admin::AccountFilter::All,
        Some("admins") => admin::AccountFilter::Admins,
        Some("disabled") => admin::AccountFilter::Disabled,
        Some(_) => return Err(AppError::bad_input("show", "one of all, admins, disabled")),
    };
    let search: String = q.q.as_deref().unwrap_or("").trim().chars().take(100).collect();
    let mut conn = app.pool.acquire().await?;
    let (rows, total) = admin::accounts_page(&mut conn, &search, filter, page).await?;
    let tz = app.settings().tz;
    Ok(Json(Listing {
        items: rows.into_iter().map(|a| user_json(tz, a)).collect(),
        page,
        per_page: admin::USERS_PAGE,
        total,
        has_more: page * admin::USERS_PAGE < total,
    }))
}

async fn find(conn: &mut PgConnection, login: &str) -> AppResult<Account> {
    admin::find_account(conn, login).await?.ok_or_else(|| AppError::not_found(format!("user {login}")))
}

async fn get_user(
    State(app): State<App>,
    ApiAdmin(_user): ApiAdmin,
    Path(login): Path<String>,
) -> AppResult<Json<UserJson>> {
    let mut conn = app.pool.acquire().await?;
    let acct = find(&mut conn, &login).await?;
    Ok(Json(user_json(app.settings().tz, acct)))
}

/// A change of an account; absent fields stay as they are.
#[derive(Deserialize)]
struct UserPatch {
    name: Option<String>,
    admin: Option<bool>,
    disabled: Option<bool>,
    /// The id of the person to link the account to (who has no account).
    person: Option<String>,
}

async fn update_user(
    State(app): State<App>,
    ApiAdmin(user): ApiAdmin,
    Path(login): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> AppResult<Json<UserJson>> {
    let person = match body.person.as_deref() {
        Some(p) => Some(
            p.trim()
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| AppError::bad_input("person", "a person's id, as the API gives it"))?,
        ),
        None => None,
    };
    let mut tx = app.pool.begin().await?;
    let acct = find(&mut tx, &login).await?;
    let mut detail = serde_json::Map::new();
    let takes_power =
        (body.admin == Some(false) && acct.is_admin) || (body.disabled == Some(true) && acct.disabled_at.is_none());
    if body.disabled == Some(true) && acct.id == user.principal.user_id && acct.disabled_at.is_none() {
        return Err(AppError::conflict("an administrator cannot disable their own account"));
    }
    if takes_power && acct.is_admin && acct.disabled_at.is_none() && admin::is_last_admin(&mut tx, acct.id).await? {
        return Err(AppError::conflict(
            "this is the only enabled administrator: it can be neither disabled nor demoted; make another administrator first",
        ));
    }
    if let Some(pid) = person
        && pid != acct.person_id
    {
        admin::link_person(&mut tx, acct.id, pid).await?;
        detail.insert("person".into(), json!({"from": acct.person_id.to_string(), "to": pid.to_string()}));
    }
    if let Some(name) = &body.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AppError::bad_input("name", "a name is 1–100 characters on one line"));
        }
        // After a new link, the name is the newly linked person's.
        let current = find(&mut tx, &acct.login).await?.name;
        if name != current {
            admin::rename(&mut tx, acct.id, name).await?;
            detail.insert("name".into(), json!({"from": current, "to": name}));
        }
    }
    if let Some(a) = body.admin
        && a != acct.is_admin
    {
        admin::set_admin(&mut tx, acct.id, a).await?;
        detail.insert("admin".into(), json!({"from": acct.is_admin, "to": a}));
    }
    let mut actions = Vec::new();
    if !detail.is_empty() {
        actions.push(("user.update", Value::Object(detail)));
    }
    if let Some(d) = body.disabled
        && admin::set_disabled(&mut tx, acct.id, d, user.now).await?
    {
        actions.push((if d { "user.disable" } else { "user.enable" }, json!({})));
    }
    for (action, detail) in actions {
        write_audit(&mut tx, &user, action, ("user", acct.login.clone()), detail).await?;
    }
    let changed = find(&mut tx, &acct.login).await?;
    tx.commit().await?;
    Ok(Json(user_json(app.settings().tz, changed)))
}

#[derive(Deserialize)]
struct PasswordReset {
    /// The new password; absent with `generate: true` to have one made.
    password: Option<String>,
    #[serde(default)]
    generate: bool,
}

#[derive(Serialize)]
struct PasswordResetDone {
    login: String,
    /// The generated password, shown this once; absent when the caller set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    sessions_ended: bool,
}

async fn reset_password(
    State(app): State<App>,
    ApiAdmin(user): ApiAdmin,
    Path(login): Path<String>,
    ApiJson(body): ApiJson<PasswordReset>,
) -> AppResult<Json<PasswordResetDone>> {
    let (password, generated) = match (body.password, body.generate) {
        (Some(_), true) => return Err(AppError::bad_input("generate", "either a password or generate, not both")),
        (Some(p), false) => (p, false),
        (None, true) => (admin::generate_password(), true),
        (None, false) => return Err(AppError::bad_input("password", "a new password, or generate: true")),
    };
    users::check_password(&password)?;
    let mut tx = app.pool.begin().await?;
    let acct = find(&mut tx, &login).await?;
    users::set_password(&mut tx, acct.id, &password, user.now).await?;
    write_audit(
        &mut tx,
        &user,
        "user.password_reset",
        ("user", acct.login.clone()),
        json!({"password": if generated { "generated" } else { "set" }, "via": "api"}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PasswordResetDone { login: acct.login, password: generated.then_some(password), sessions_ended: true }))
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct TokenJson {
    id: String,
    user: String,
    label: String,
    created_at: DateTime<FixedOffset>,
    last_used_at: Option<DateTime<FixedOffset>>,
    revoked_at: Option<DateTime<FixedOffset>>,
}

fn token_json(tz: Tz, r: admin::TokenRow) -> TokenJson {
    TokenJson {
        id: r.id.to_string(),
        user: r.login,
        label: r.label,
        created_at: local(tz, r.created_at),
        last_used_at: r.last_used_at.map(|at| local(tz, at)),
        revoked_at: r.revoked_at.map(|at| local(tz, at)),
    }
}

#[derive(Deserialize)]
struct TokensQuery {
    user: Option<String>,
}

async fn list_tokens(
    State(app): State<App>,
    user: ApiUser,
    Query(q): Query<TokensQuery>,
) -> AppResult<Json<Vec<TokenJson>>> {
    let mut conn = app.pool.acquire().await?;
    let owner = match q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(login) if login.to_lowercase() != user.principal.login => {
            guard::require_admin(&user.principal)?;
            find(&mut conn, login).await?.id
        }
        _ => user.principal.user_id,
    };
    let rows = admin::tokens_of(&mut conn, owner).await?;
    let tz = app.settings().tz;
    Ok(Json(rows.into_iter().map(|r| token_json(tz, r)).collect()))
}

#[derive(Deserialize)]
struct NewToken {
    label: String,
}

#[derive(Serialize)]
struct TokenCreated {
    #[serde(flatten)]
    info: TokenJson,
    /// The token itself: shown this once, never again.
    token: String,
}

async fn create_token(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewToken>,
) -> AppResult<impl IntoResponse> {
    let label = admin::validate_label(&body.label)?;
    if label.is_empty() {
        return Err(AppError::bad_input("label", "say what the token is for"));
    }
    let mut tx = app.pool.begin().await?;
    let token = users::create_token(&mut tx, user.principal.user_id, &label, user.now).await?;
    let id = admin::token_id(&mut tx, &token).await?;
    write_audit(
        &mut tx,
        &user,
        "token.create",
        ("api_token", id.to_string()),
        json!({"owner": user.principal.login, "label": label, "via": "api"}),
    )
    .await?;
    let row = admin::find_token(&mut tx, id).await?.ok_or_else(|| anyhow::anyhow!("the new token vanished"))?;
    tx.commit().await?;
    Ok(created(TokenCreated { info: token_json(app.settings().tz, row), token }))
}

async fn revoke_token(State(app): State<App>, user: ApiUser, Path(id): Path<String>) -> AppResult<StatusCode> {
    let id = parse_id("token", &id)?;
    let mut tx = app.pool.begin().await?;
    let token = admin::find_token(&mut tx, id)
        .await?
        .filter(|t| t.user_id == user.principal.user_id || user.principal.can_configure())
        .ok_or_else(|| AppError::not_found("token"))?;
    if admin::revoke_token(&mut tx, token.id, user.now).await? {
        write_audit(
            &mut tx,
            &user,
            "token.revoke",
            ("api_token", token.id.to_string()),
            json!({"owner": token.login, "label": token.label, "via": "api"}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Default)]
struct LeadDaysJson {
    year: Option<Value>,
    half: Option<Value>,
    quarter: Option<Value>,
    month: Option<Value>,
}

#[derive(Serialize)]
struct MailJson {
    host: String,
    port: u16,
    tls: String,
    user: String,
    from: String,
    /// Whether a password is stored; the password itself is never returned.
    password_set: bool,
}

#[derive(Serialize)]
struct SettingsJson {
    time_zone: String,
    /// True once duties exist: then the time zone cannot change.
    time_zone_locked: bool,
    lead_days: crate::db::settings::LeadDays,
    attachment_max_mb: i64,
    attachment_max_bytes: i64,
    attachment_types: Vec<&'static str>,
    mail: Option<MailJson>,
}

async fn settings_json(app: &App, conn: &mut PgConnection) -> AppResult<SettingsJson> {
    let s = app.settings();
    let locked = admin::duties_exist(conn).await?;
    let password_set = admin::mail_password_set(&s);
    Ok(SettingsJson {
        time_zone: s.tz.name().to_owned(),
        time_zone_locked: locked,
        lead_days: s.lead_days.clone(),
        attachment_max_mb: (s.attachment_max_bytes + (1 << 20) - 1) >> 20,
        attachment_max_bytes: s.attachment_max_bytes,
        attachment_types: crate::files::ACCEPTED.to_vec(),
        mail: admin::mail_server(&s).map(|m| MailJson {
            host: m.host,
            port: m.port,
            tls: m.tls,
            user: m.user,
            from: m.from,
            password_set,
        }),
    })
}

async fn get_settings(State(app): State<App>, ApiAdmin(_user): ApiAdmin) -> AppResult<Json<SettingsJson>> {
    let mut conn = app.pool.acquire().await?;
    Ok(Json(settings_json(&app, &mut conn).await?))
}

/// The mail server in a PUT; absent fields stay, `null` for the whole object removes it.
#[derive(Deserialize, Default)]
struct MailPut {
    host: Option<String>,
    port: Option<Value>,
    tls: Option<String>,
    user: Option<String>,
    from: Option<String>,
    /// A new password; absent keeps the stored one, `""` removes it.
    password: Option<String>,
}

#[derive(Deserialize)]
struct SettingsPut {
    time_zone: Option<String>,
    lead_days: Option<LeadDaysJson>,
    attachment_max_mb: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    mail: Option<Option<MailPut>>,
}

/// A field that may be absent (None), null (Some(None)) or a value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A number or a string holding one, as text for the shared validation.
fn number_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "x".to_owned(),
    }
}

fn api_field(field: &str) -> String {
    match field {
        "lead_year" => "lead_days.year".to_owned(),
        "lead_half" => "lead_days.half".to_owned(),
        "lead_quarter" => "lead_days.quarter".to_owned(),
        "lead_month" => "lead_days.month".to_owned(),
        f => match f.strip_prefix("mail_") {
            Some(rest) => format!("mail.{rest}"),
            None => f.to_owned(),
        },
    }
}

async fn put_settings(
    State(app): State<App>,
    ApiAdmin(user): ApiAdmin,
    ApiJson(body): ApiJson<SettingsPut>,
) -> AppResult<Json<SettingsJson>> {
    app.ensure_duties(user.now).await?;
    let current = app.settings();
    // Start from what is stored, and lay the body's fields over it.
    let mut d = SettingsDraft::of(&current);
    if let Some(tz) = body.time_zone {
        d.time_zone = tz;
    }
    if let Some(l) = body.lead_days {
        for (v, slot) in [
            (l.year, &mut d.lead_year),
            (l.half, &mut d.lead_half),
            (l.quarter, &mut d.lead_quarter),
            (l.month, &mut d.lead_month),
        ] {
            if let Some(v) = v {
                *slot = number_text(&v);
            }
        }
    }
    if let Some(v) = body.attachment_max_mb {
        d.attachment_max_mb = number_text(&v);
    }
    match body.mail {
        None => {}
        Some(None) => {
            d.mail_host.clear();
            d.mail_from.clear();
            d.mail_user.clear();
            d.mail_port.clear();
            d.mail_password_clear = "1".to_owned();
        }
        Some(Some(m)) => {
            if let Some(h) = m.host {
                d.mail_host = h;
            }
            if let Some(p) = m.port {
                d.mail_port = if p.is_null() { String::new() } else { number_text(&p) };
            }
            if let Some(t) = m.tls {
                d.mail_tls = t;
            }
            if let Some(u) = m.user {
                d.mail_user = u;
            }
            if let Some(f) = m.from {
                d.mail_from = f;
            }
            match m.password {
                Some(p) if p.is_empty() => d.mail_password_clear = "1".to_owned(),
                Some(p) => d.mail_password = p,
                None => {}
            }
        }
    }
    let mut tx = app.pool.begin().await?;
    let locked = admin::duties_exist(&mut tx).await?;
    let change = admin::validate_settings(&d, current.tz, locked).map_err(|problems| {
        let (field, p) = problems[0];
        if p == admin::SettingsProblem::TimeZoneLocked {
            AppError::conflict(p.message())
        } else {
            AppError::bad_input(api_field(field), p.message())
        }
    })?;
    let saved = admin::save_settings(&mut tx, &current, &change, user.now).await?;
    if !saved.changed.is_empty() {
        let mut detail = saved.detail.clone();
        if let Value::Object(m) = &mut detail {
            m.insert("via".into(), json!("api"));
        }
        write_audit(&mut tx, &user, "settings.update", ("settings", "deployment".to_owned()), detail).await?;
    }
    tx.commit().await?;
    app.reload_settings().await?;
    let mut conn = app.pool.acquire().await?;
    Ok(Json(settings_json(&app, &mut conn).await?))
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    org: Option<String>,
    /// `true` to include the organisation's subtree.
    subtree: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The `next_page` of the previous answer (entries older than those).
    page: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct AuditEntryJson {
    id: String,
    at: DateTime<FixedOffset>,
    actor: String,
    action: String,
    object_type: String,
    object_id: String,
    org: Option<String>,
    detail: Value,
    ip: Option<String>,
    sealed: bool,
}

#[derive(Serialize)]
struct AuditPage {
    entries: Vec<AuditEntryJson>,
    /// Pass as `page` for the next (older) entries; null at the end.
    next_page: Option<String>,
}

async fn list_audit(
    State(app): State<App>,
    ApiAdmin(_user): ApiAdmin,
    Query(q): Query<AuditQuery>,
) -> AppResult<Json<AuditPage>> {
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await?;
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let mut f = AuditFilter {
        actor: text(&q.actor).map(|a| a.to_lowercase()),
        action: text(&q.action),
        subtree: matches!(q.subtree.as_deref().map(str::trim), Some("true" | "1" | "yes")),
        ..Default::default()
    };
    if f.actor.as_ref().is_some_and(|a| a.chars().count() > 100) {
        return Err(AppError::bad_input("actor", "at most 100 characters"));
    }
    if f.action.as_ref().is_some_and(|a| a.chars().count() > 64) {
        return Err(AppError::bad_input("action", "at most 64 characters"));
    }
    if let Some(code) = text(&q.org) {
        let org = tree::org_by_code_any_case(&mut conn, &code)
            .await?
            .ok_or_else(|| AppError::bad_input("org", format!("no organisation has the code {code}")))?;
        f.org = Some((org.id, org.path));
    }
    let from = text(&q.from).map(|s| parse_date("from", &s)).transpose()?;
    let to = text(&q.to).map(|s| parse_date("to", &s)).transpose()?;
    if let (Some(a), Some(b)) = (from, to)
        && b < a
    {
        return Err(AppError::bad_input("to", "the end comes before the start"));
    }
    f.from = from.map(|d| local_midnight(tz, d));
    f.until = to.and_then(|d| d.succ_opt()).map(|d| local_midnight(tz, d));
    let cursor = match text(&q.page) {
        None => Cursor::Newest,
        Some(p) => Cursor::Before(
            p.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| AppError::bad_input("page", "the next_page of the previous answer"))?,
        ),
    };
    let limit = match text(&q.limit) {
        None => admin::AUDIT_PAGE,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| AppError::bad_input("limit", "a whole number from 1 to 500"))?,
    };
    let (rows, more) = admin::audit_page(&mut conn, &f, cursor, limit).await?;
    let next_page = if more { rows.last().map(|r| r.id.to_string()) } else { None };
    Ok(Json(AuditPage {
        entries: rows
            .into_iter()
            .map(|r| AuditEntryJson {
                id: r.id.to_string(),
                at: local(tz, r.at),
                actor: r.actor,
                action: r.action,
                object_type: r.object_type,
                object_id: r.object_id,
                org: r.org_code,
                detail: r.detail,
                ip: r.ip,
                sealed: r.seal_no.is_some(),
            })
            .collect(),
        next_page,
    }))
}

#[derive(Serialize)]
struct VerificationJson {
    intact: bool,
    sealed: u64,
    unsealed: u64,
    problem: Option<String>,
}

async fn verify_audit(State(app): State<App>, ApiAdmin(user): ApiAdmin) -> AppResult<Json<VerificationJson>> {
    let v = audit::verify(&app.pool).await?;
    let mut tx = app.pool.begin().await?;
    write_audit(
        &mut tx,
        &user,
        "audit.verify",
        (admin::CHAIN_OBJECT.0, admin::CHAIN_OBJECT.1.to_owned()),
        json!({"intact": v.problem.is_none(), "sealed": v.sealed, "unsealed": v.unsealed, "problem": v.problem, "via": "api"}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(VerificationJson {
        intact: v.problem.is_none(),
        sealed: v.sealed,
        unsealed: v.unsealed,
        problem: v.problem,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_are_named_as_the_api_writes_them() {
        assert_eq!(api_field("lead_month"), "lead_days.month");
        assert_eq!(api_field("mail_host"), "mail.host");
        assert_eq!(api_field("time_zone"), "time_zone");
    }
}

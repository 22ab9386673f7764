//! Accounts and API tokens, deployment settings, and the audit log (用户与令牌、系统设置、
//! 审计日志), for admins; and everyone's own API tokens (`/account/tokens`).
//!
//! Every change runs in one transaction with its audit entry. A form with a mistake comes
//! back with HTTP 422, the user's input kept and the field marked; a change that would
//! leave the portal without an enabled admin comes back with 409 and says why. Passwords
//! and tokens are shown once, on the answer to the form that made them, and never logged.

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Layout, PageError, PageResultExt, render, render_status};
use crate::app::App;
use crate::db::admin::{self, Account, AccountFilter, AuditFilter, AuditRow, Cursor, SettingsDraft, SettingsProblem};
use crate::db::{audit, tree, users};
use crate::domain::period::Cadence;
use crate::domain::time::local_midnight;
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::session::{PageUser, percent_encode};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/users", get(users_page).post(create_user))
        .route("/admin/users/{login}", get(user_page).post(update_user))
        .route("/admin/users/{login}/person", post(link_person))
        .route("/admin/users/{login}/password", post(reset_password))
        .route("/admin/users/{login}/disable", post(disable_user))
        .route("/admin/users/{login}/enable", post(enable_user))
        .route("/admin/users/{login}/tokens/{id}/revoke", post(revoke_user_token))
        .route("/account/tokens", get(own_tokens).post(create_own_token))
        .route("/account/tokens/{id}/revoke", post(revoke_own_token))
        .route("/admin/settings", get(settings_page).post(save_settings))
        .route("/admin/audit", get(audit_page))
        .route("/admin/audit/export", get(export_audit))
        .route("/admin/audit/verify", post(verify_chain))
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// A signed-in admin. Anyone else gets 403, logged as a refusal by `web::refusal`
/// (SECURITY.md row 25).
struct AdminUser(PageUser);

impl FromRequestParts<App> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<AdminUser, Response> {
        let user = PageUser::from_request_parts(parts, app).await?;
        if let Err(e) = guard::require_admin(&user.principal) {
            return Err(PageError(e, user.tr.locale).into_response());
        }
        Ok(AdminUser(user))
    }
}

/// Per-field messages of a form, in the user's language.
#[derive(Debug, Default, Clone)]
pub struct Errors(Vec<(&'static str, String)>);

impl Errors {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if !self.has(field) {
            self.0.push((field, message.into()));
        }
    }

    pub fn get(&self, field: &str) -> Option<String> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, m)| m.clone())
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `aria-invalid` for a field.
    pub fn invalid(&self, field: &str) -> &'static str {
        if self.has(field) { "true" } else { "false" }
    }
}

/// 2026年3月26日 16:05, or "never" when there is no instant.
fn when(t: &Tr, tz: Tz, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => format::instant(t, tz, at),
        None => t.t("admin_users.never").to_owned(),
    }
}

/// The message of the password policy's refusal, in the user's language.
fn password_problem(t: &Tr, password: &str) -> Option<String> {
    match users::check_password(password) {
        Ok(()) => None,
        Err(AppError::BadInput { message, .. }) => Some(
            if message.contains("at least") {
                t.t("admin_users.err_password_short")
            } else if message.contains("at most") {
                t.t("admin_users.err_password_long")
            } else {
                t.t("admin_users.err_password_common")
            }
            .to_owned(),
        ),
        Err(_) => Some(t.t("admin_users.err_password_short").to_owned()),
    }
}

fn role_label(t: &Tr, role: &str) -> String {
    match role {
        "secretary" | "member" | "coordinator" | "inspector" => t.t(&format!("admin_users.role_{role}")).to_owned(),
        other => other.to_owned(),
    }
}

/// "第一党支部书记" / "Secretary, First Branch", marked when acting.
fn role_phrase(t: &Tr, r: &admin::HeldRole) -> String {
    let mut s = t.f2("admin_users.role_at", &r.org_name, role_label(t, &r.role));
    if r.acting {
        s.push_str(t.t("admin_users.acting"));
    }
    s
}

fn name_problem(t: &Tr, name: &str) -> Option<String> {
    let n = name.trim().chars().count();
    (n == 0 || n > 100 || name.chars().any(char::is_control)).then(|| t.t("admin_users.err_name").to_owned())
}

/// People offered at most when a typed name matches only in part.
const PERSON_CHOICES: usize = 12;

/// A person the form may link an account to, as a choice among several matches.
pub struct PersonChoice {
    pub id: i64,
    pub name: String,
    pub detail: String,
    /// The account the person already has (then they cannot be chosen).
    pub login: Option<String>,
}

/// Which person a typed text names: the one chosen among earlier matches (`pick`), or the
/// only person it names (`#12`, a person code, a login, a full name). Otherwise a message
/// for the field and, when several match, the choices.
async fn resolve_person(
    conn: &mut sqlx::PgConnection,
    t: &Tr,
    user: &PageUser,
    text: &str,
    pick: &str,
) -> Result<Result<i64, (String, Vec<PersonChoice>)>, PageError> {
    let mut found = if let Ok(id) = pick.trim().parse::<i64>() {
        tree::people_named(conn, &format!("#{id}"), user.today).await.page(user)?
    } else if text.trim().is_empty() {
        return Ok(Err((t.t("admin_users.err_person_empty").to_owned(), vec![])));
    } else {
        tree::people_named(conn, text, user.today).await.page(user)?
    };
    // Nobody by exactly that: offer the people whose name contains it.
    let partial = found.is_empty() && pick.trim().is_empty();
    if partial {
        let (rows, _) = tree::people_page(conn, text, user.today, 1).await.page(user)?;
        found = rows.into_iter().take(PERSON_CHOICES).collect();
    }
    let choices: Vec<PersonChoice> = found
        .iter()
        .map(|p| {
            let mut detail: Vec<String> = Vec::new();
            if let Some(c) = &p.code {
                detail.push(c.clone());
            }
            detail.extend(p.first_roles().into_iter().map(|(org, _, _)| org));
            PersonChoice { id: p.id, name: p.name.clone(), detail: detail.join(" · "), login: p.login.clone() }
        })
        .collect();
    match choices.len() {
        0 => Ok(Err((t.f1("admin_users.err_person_unknown", text.trim()), vec![]))),
        _ if partial => Ok(Err((t.f1("admin_users.err_person_partial", text.trim()), choices))),
        1 => Ok(Ok(choices[0].id)),
        _ => Ok(Err((t.t("admin_users.err_person_several").to_owned(), choices))),
    }
}

// ---------------------------------------------------------------------------------------
// The list of accounts, and creating one
// ---------------------------------------------------------------------------------------

/// One account in the list.
pub struct UserItem {
    pub login: String,
    pub name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub person_code: String,
    /// The roles held today, in words.
    pub roles: String,
    pub last_seen: String,
    pub tokens: i64,
}

pub struct Pager {
    pub label: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

/// What the new-account form holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NewUserInput {
    pub login: String,
    pub name: String,
    /// `generate` or `set`.
    pub password_mode: String,
    pub password: String,
    pub admin: String,
    /// `new` or `existing`.
    pub person_mode: String,
    pub person: String,
    pub person_pick: String,
}

impl NewUserInput {
    pub fn sets_password(&self) -> bool {
        self.password_mode == "set"
    }

    pub fn links_person(&self) -> bool {
        self.person_mode == "existing"
    }
}

pub struct FilterOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    t: Tr,
    layout: Layout,
    q: String,
    show: &'static str,
    filters: Vec<FilterOption>,
    users: Vec<UserItem>,
    total: i64,
    pager: Option<Pager>,
    input: NewUserInput,
    errors: Errors,
    choices: Vec<PersonChoice>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UsersQuery {
    q: String,
    show: String,
    page: String,
}

async fn users_page(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Query(q): Query<UsersQuery>,
) -> Result<Response, PageError> {
    users_view(&app, &user, &q, NewUserInput::default(), Errors::default(), vec![], StatusCode::OK).await
}

async fn users_view(
    app: &App,
    user: &PageUser,
    q: &UsersQuery,
    input: NewUserInput,
    errors: Errors,
    choices: Vec<PersonChoice>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let search: String = q.q.trim().chars().take(100).collect();
    let filter = AccountFilter::parse(&q.show);
    let page = q.page.trim().parse::<i64>().ok().filter(|p| (1..=100_000).contains(p)).unwrap_or(1);
    let mut conn = app.pool.acquire().await.page(user)?;
    let (rows, total) = admin::accounts_page(&mut conn, &search, filter, page).await.page(user)?;
    let people: Vec<i64> = rows.iter().map(|a| a.person_id).collect();
    let held = admin::roles_held(&mut conn, &people, user.today, 3).await.page(user)?;
    drop(conn);
    let users = rows
        .into_iter()
        .map(|a| UserItem {
            roles: held
                .iter()
                .filter(|r| r.person_id == a.person_id)
                .map(|r| role_phrase(&t, r))
                .collect::<Vec<_>>()
                .join(t.t("admin_users.list_sep")),
            last_seen: when(&t, tz, a.last_seen_at),
            disabled: a.disabled_at.is_some(),
            person_code: a.person_code.unwrap_or_default(),
            login: a.login,
            name: a.name,
            is_admin: a.is_admin,
            tokens: a.tokens,
        })
        .collect();
    let mut base = String::from("/admin/users?");
    if !search.is_empty() {
        base.push_str(&format!("q={}&", percent_encode(&search)));
    }
    if filter != AccountFilter::All {
        base.push_str(&format!("show={}&", filter.as_str()));
    }
    let pages = ((total + admin::USERS_PAGE - 1) / admin::USERS_PAGE).max(1);
    let pager = (pages > 1 || page > 1).then(|| Pager {
        label: t.f3("admin_users.page_of", page.min(pages.max(page)), pages, total),
        prev: (page > 1).then(|| format!("{base}page={}", (page - 1).min(pages))),
        next: (page < pages).then(|| format!("{base}page={}", page + 1)),
    });
    let filters = vec![
        FilterOption { value: "", label: t.t("admin_users.show_all") },
        FilterOption { value: "admins", label: t.t("admin_users.show_admins") },
        FilterOption { value: "disabled", label: t.t("admin_users.show_disabled") },
    ];
    let here = base.trim_end_matches(['?', '&']).to_owned();
    let page = UsersPage {
        t,
        layout: Layout::new(user, "admin", &here),
        q: search,
        show: filter.as_str(),
        filters,
        users,
        total,
        pager,
        input,
        errors,
        choices,
    };
    Ok(render_status(status, &page))
}

/// A password or token shown once, right after it was made.
#[derive(Template)]
#[template(path = "admin/users_secret.html")]
struct SecretPage {
    t: Tr,
    layout: Layout,
    title: String,
    intro: String,
    label: String,
    value: String,
    back_href: String,
    back_label: String,
}

fn secret_page(user: &PageUser, title: String, intro: String, label: &str, value: String, back: &str) -> Response {
    let t = user.tr;
    let page = SecretPage {
        t,
        layout: Layout::new(user, "admin", back),
        title,
        intro,
        label: t.t(label).to_owned(),
        value,
        back_href: back.to_owned(),
        back_label: t.t("admin_users.secret_back").to_owned(),
    };
    render(&page)
}

async fn create_user(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Form(mut input): Form<NewUserInput>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let mut errors = Errors::default();
    let mut choices = Vec::new();
    if input.password_mode != "set" {
        input.password_mode = "generate".to_owned();
    }
    if input.person_mode != "existing" {
        input.person_mode = "new".to_owned();
    }
    let login = match users::normalize_login(&input.login) {
        Ok(l) => Some(l),
        Err(_) => {
            errors.add("login", t.t("admin_users.err_login"));
            None
        }
    };
    if !input.links_person()
        && let Some(m) = name_problem(&t, &input.name)
    {
        errors.add("name", m);
    }
    if input.sets_password()
        && let Some(m) = password_problem(&t, &input.password)
    {
        errors.add("password", m);
    }
    let mut conn = app.pool.acquire().await.page(&user)?;
    if let Some(l) = &login
        && users::find_by_login(&mut conn, l).await.page(&user)?.is_some()
    {
        errors.add("login", t.f1("admin_users.err_login_taken", l));
    }
    let mut person_id = None;
    if input.links_person() {
        match resolve_person(&mut conn, &t, &user, &input.person, &input.person_pick).await? {
            Ok(id) => match admin::login_of_person(&mut conn, id).await.page(&user)? {
                Some(other) => errors.add("person", t.f1("admin_users.err_person_has_account", other)),
                None => person_id = Some(id),
            },
            Err((message, found)) => {
                errors.add("person", message);
                choices = found;
            }
        }
    }
    drop(conn);
    let (Some(login), true) = (login, errors.is_empty()) else {
        // Never send a password back into the page.
        input.password.clear();
        let q = UsersQuery::default();
        return users_view(&app, &user, &q, input, errors, choices, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let generated = !input.sets_password();
    let password = if generated { admin::generate_password() } else { std::mem::take(&mut input.password) };
    let admin_flag = !input.admin.is_empty();
    let mut tx = app.pool.begin().await.page(&user)?;
    let created = match person_id {
        Some(pid) => admin::create_for_person(&mut tx, &login, &password, pid, admin_flag, user.now).await,
        None => users::create(&mut tx, &login, &password, input.name.trim(), admin_flag, user.now).await,
    };
    let created = match created {
        Ok(c) => c,
        Err(AppError::Conflict(_)) => {
            drop(tx);
            errors.add("login", t.f1("admin_users.err_login_taken", &login));
            input.password.clear();
            let q = UsersQuery::default();
            return users_view(&app, &user, &q, input, errors, vec![], StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(e) => return Err(PageError(e, t.locale)),
    };
    audit::write(
        &mut tx,
        user.audit_entry("user.create", ("user", created.login.clone()), None, json!({"admin": admin_flag, "person": created.person_id.to_string(), "password": if generated { "generated" } else { "set" }})),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    let back = format!("/admin/users/{}", created.login);
    if generated {
        return Ok(secret_page(
            &user,
            t.t("admin_users.created_title").to_owned(),
            t.f1("admin_users.created_intro", &created.login),
            "admin_users.initial_password",
            password,
            &back,
        ));
    }
    Ok(Redirect::to(&format!("{back}?done=created")).into_response())
}

// ---------------------------------------------------------------------------------------
// One account
// ---------------------------------------------------------------------------------------

/// A token as lists show it.
pub struct TokenItem {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
    /// Where the revoke button posts.
    pub revoke_href: String,
}

fn token_items(t: &Tr, tz: Tz, rows: Vec<admin::TokenRow>, href: impl Fn(i64) -> String) -> Vec<TokenItem> {
    rows.into_iter()
        .map(|r| TokenItem {
            id: r.id,
            revoke_href: href(r.id),
            label: if r.label.is_empty() { t.t("admin_users.token_unlabelled").to_owned() } else { r.label },
            created: format::instant(t, tz, r.created_at),
            last_used: when(t, tz, r.last_used_at),
            revoked: r.revoked_at.map(|at| format::instant(t, tz, at)),
        })
        .collect()
}

/// What the forms of the account's page hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UserForms {
    pub name: String,
    pub admin: String,
    pub person: String,
    pub person_pick: String,
    /// `generate` or `set`.
    pub password_mode: String,
    pub password: String,
}

#[derive(Template)]
#[template(path = "admin/users_show.html")]
struct UserPage {
    t: Tr,
    layout: Layout,
    acct: Account,
    disabled: bool,
    is_self: bool,
    /// The only enabled admin: they can be neither demoted nor disabled.
    last_admin: bool,
    created: String,
    password_changed: String,
    last_seen: String,
    disabled_since: String,
    tokens: Vec<TokenItem>,
    /// The roles the account's person holds today.
    roles: Vec<String>,
    forms: UserForms,
    errors: Errors,
    choices: Vec<PersonChoice>,
    notice: Option<String>,
    /// Why a change was refused (409).
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DoneQuery {
    done: String,
}

async fn account_or_404(app: &App, user: &PageUser, login: &str) -> Result<Account, PageError> {
    let mut conn = app.pool.acquire().await.page(user)?;
    admin::find_account(&mut conn, login)
        .await
        .page(user)?
        .ok_or_else(|| PageError(AppError::not_found("user"), user.tr.locale))
}

async fn user_page(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    let t = user.tr;
    let notice = match q.done.as_str() {
        "created" | "saved" | "linked" | "password" | "disabled" | "enabled" | "revoked" => {
            Some(t.t(&format!("admin_users.done_{}", q.done)).to_owned())
        }
        _ => None,
    };
    let forms = UserForms { name: acct.name.clone(), admin: flag(acct.is_admin), ..Default::default() };
    user_view(&app, &user, acct, forms, Errors::default(), vec![], notice, None, StatusCode::OK).await
}

fn flag(b: bool) -> String {
    if b { "1".to_owned() } else { String::new() }
}

#[allow(clippy::too_many_arguments)]
async fn user_view(
    app: &App,
    user: &PageUser,
    acct: Account,
    forms: UserForms,
    errors: Errors,
    choices: Vec<PersonChoice>,
    notice: Option<String>,
    refusal: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await.page(user)?;
    let tokens = admin::tokens_of(&mut conn, acct.id).await.page(user)?;
    let held = admin::roles_held(&mut conn, &[acct.person_id], user.today, 50).await.page(user)?;
    let admins = admin::enabled_admins(&mut conn).await.page(user)?;
    drop(conn);
    let disabled = acct.disabled_at.is_some();
    let page = UserPage {
        t,
        layout: Layout::new(user, "admin", &format!("/admin/users/{}", acct.login)),
        disabled,
        is_self: acct.id == user.principal.user_id,
        last_admin: acct.is_admin && !disabled && admins <= 1,
        created: format::instant(&t, tz, acct.created_at),
        password_changed: format::instant(&t, tz, acct.password_changed_at),
        last_seen: when(&t, tz, acct.last_seen_at),
        disabled_since: acct.disabled_at.map(|at| format::instant(&t, tz, at)).unwrap_or_default(),
        tokens: token_items(&t, tz, tokens, |id| format!("/admin/users/{}/tokens/{id}/revoke", acct.login)),
        roles: held.iter().map(|r| role_phrase(&t, r)).collect(),
        acct,
        forms,
        errors,
        choices,
        notice,
        refusal,
    };
    Ok(render_status(status, &page))
}

/// Re-show the account's page with a 409 and the reason.
async fn refuse(app: &App, user: &PageUser, acct: Account, key: &str) -> Result<Response, PageError> {
    let forms = UserForms { name: acct.name.clone(), admin: flag(acct.is_admin), ..Default::default() };
    let reason = user.tr.t(key).to_owned();
    user_view(app, user, acct, forms, Errors::default(), vec![], None, Some(reason), StatusCode::CONFLICT).await
}

async fn update_user(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
    Form(mut forms): Form<UserForms>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    let t = user.tr;
    let mut errors = Errors::default();
    if let Some(m) = name_problem(&t, &forms.name) {
        errors.add("name", m);
    }
    if !errors.is_empty() {
        forms.person.clear();
        return user_view(&app, &user, acct, forms, errors, vec![], None, None, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let admin_flag = !forms.admin.is_empty();
    let name = forms.name.trim().to_owned();
    let mut tx = app.pool.begin().await.page(&user)?;
    if acct.is_admin && !admin_flag && admin::is_last_admin(&mut tx, acct.id).await.page(&user)? {
        drop(tx);
        return refuse(&app, &user, acct, "admin_users.refused_last_admin_demote").await;
    }
    let mut detail = serde_json::Map::new();
    if name != acct.name {
        admin::rename(&mut tx, acct.id, &name).await.page(&user)?;
        detail.insert("name".into(), json!({"from": acct.name, "to": name}));
    }
    if admin_flag != acct.is_admin {
        admin::set_admin(&mut tx, acct.id, admin_flag).await.page(&user)?;
        detail.insert("admin".into(), json!({"from": acct.is_admin, "to": admin_flag}));
    }
    if !detail.is_empty() {
        audit::write(
            &mut tx,
            user.audit_entry("user.update", ("user", acct.login.clone()), None, Value::Object(detail)),
        )
        .await
        .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    if acct.id == user.principal.user_id && !admin_flag {
        // No longer an admin: this page is closed to them now.
        return Ok(Redirect::to("/").into_response());
    }
    Ok(Redirect::to(&format!("/admin/users/{}?done=saved", acct.login)).into_response())
}

async fn link_person(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
    Form(mut forms): Form<UserForms>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    let t = user.tr;
    let mut errors = Errors::default();
    let mut conn = app.pool.acquire().await.page(&user)?;
    let picked = resolve_person(&mut conn, &t, &user, &forms.person, &forms.person_pick).await?;
    let person_id = match picked {
        Ok(id) if id == acct.person_id => None,
        Ok(id) => match admin::login_of_person(&mut conn, id).await.page(&user)? {
            Some(other) => {
                errors.add("person", t.f1("admin_users.err_person_has_account", other));
                None
            }
            None => Some(id),
        },
        Err((message, found)) => {
            errors.add("person", message);
            drop(conn);
            forms.name = acct.name.clone();
            forms.admin = flag(acct.is_admin);
            return user_view(&app, &user, acct, forms, errors, found, None, None, StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    drop(conn);
    if !errors.is_empty() {
        forms.name = acct.name.clone();
        forms.admin = flag(acct.is_admin);
        return user_view(&app, &user, acct, forms, errors, vec![], None, None, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    if let Some(pid) = person_id {
        let mut tx = app.pool.begin().await.page(&user)?;
        match admin::link_person(&mut tx, acct.id, pid).await {
            Ok(()) => {}
            Err(AppError::Conflict(_)) => {
                drop(tx);
                let mut errors = Errors::default();
                errors.add("person", t.t("admin_users.err_person_taken"));
                let forms = UserForms { name: acct.name.clone(), admin: flag(acct.is_admin), ..forms };
                return user_view(&app, &user, acct, forms, errors, vec![], None, None, StatusCode::CONFLICT).await;
            }
            Err(e) => return Err(PageError(e, t.locale)),
        }
        audit::write(
            &mut tx,
            user.audit_entry(
                "user.link_person",
                ("user", acct.login.clone()),
                None,
                json!({"from": acct.person_id.to_string(), "to": pid.to_string()}),
            ),
        )
        .await
        .page(&user)?;
        tx.commit().await.page(&user)?;
    }
    Ok(Redirect::to(&format!("/admin/users/{}?done=linked", acct.login)).into_response())
}

async fn reset_password(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
    Form(mut forms): Form<UserForms>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    if acct.id == user.principal.user_id {
        // One's own password changes with the current one, on its own page.
        return Ok(Redirect::to("/account/password").into_response());
    }
    let t = user.tr;
    let generated = forms.password_mode != "set";
    if !generated && let Some(m) = password_problem(&t, &forms.password) {
        let mut errors = Errors::default();
        errors.add("password", m);
        forms.password.clear();
        forms.name = acct.name.clone();
        forms.admin = flag(acct.is_admin);
        return user_view(&app, &user, acct, forms, errors, vec![], None, None, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let password = if generated { admin::generate_password() } else { std::mem::take(&mut forms.password) };
    let mut tx = app.pool.begin().await.page(&user)?;
    // Setting a password ends every session of the account (SECURITY.md row 11).
    users::set_password(&mut tx, acct.id, &password, user.now).await.page(&user)?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "user.password_reset",
            ("user", acct.login.clone()),
            None,
            json!({"password": if generated { "generated" } else { "set" }}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    let back = format!("/admin/users/{}", acct.login);
    if generated {
        return Ok(secret_page(
            &user,
            t.t("admin_users.reset_title").to_owned(),
            t.f1("admin_users.reset_intro", &acct.login),
            "admin_users.new_password",
            password,
            &back,
        ));
    }
    Ok(Redirect::to(&format!("{back}?done=password")).into_response())
}

async fn disable_user(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    if acct.id == user.principal.user_id {
        return refuse(&app, &user, acct, "admin_users.refused_self_disable").await;
    }
    let mut tx = app.pool.begin().await.page(&user)?;
    if acct.is_admin && admin::is_last_admin(&mut tx, acct.id).await.page(&user)? {
        drop(tx);
        return refuse(&app, &user, acct, "admin_users.refused_last_admin_disable").await;
    }
    if admin::set_disabled(&mut tx, acct.id, true, user.now).await.page(&user)? {
        audit::write(&mut tx, user.audit_entry("user.disable", ("user", acct.login.clone()), None, json!({})))
            .await
            .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/users/{}?done=disabled", acct.login)).into_response())
}

async fn enable_user(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path(login): Path<String>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    let mut tx = app.pool.begin().await.page(&user)?;
    if admin::set_disabled(&mut tx, acct.id, false, user.now).await.page(&user)? {
        audit::write(&mut tx, user.audit_entry("user.enable", ("user", acct.login.clone()), None, json!({})))
            .await
            .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/users/{}?done=enabled", acct.login)).into_response())
}

async fn revoke_user_token(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Path((login, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let acct = account_or_404(&app, &user, &login).await?;
    let id = id.parse::<i64>().ok().filter(|id| *id > 0);
    let mut tx = app.pool.begin().await.page(&user)?;
    let token = match id {
        Some(id) => admin::find_token(&mut tx, id).await.page(&user)?,
        None => None,
    };
    let Some(token) = token.filter(|tk| tk.user_id == acct.id) else {
        return Err(PageError(AppError::not_found("token"), user.tr.locale));
    };
    revoke(&mut tx, &user, &token).await?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/users/{}?done=revoked#tokens", acct.login)).into_response())
}

async fn revoke(tx: &mut sqlx::PgConnection, user: &PageUser, token: &admin::TokenRow) -> Result<(), PageError> {
    if admin::revoke_token(tx, token.id, user.now).await.page(user)? {
        audit::write(
            tx,
            user.audit_entry(
                "token.revoke",
                ("api_token", token.id.to_string()),
                None,
                json!({"owner": token.login, "label": token.label}),
            ),
        )
        .await
        .page(user)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Own tokens
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    t: Tr,
    layout: Layout,
    tokens: Vec<TokenItem>,
    label: String,
    errors: Errors,
    /// A token just made: shown this once.
    new_token: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenForm {
    label: String,
}

async fn tokens_view(
    app: &App,
    user: &PageUser,
    label: String,
    errors: Errors,
    new_token: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await.page(user)?;
    let rows = admin::tokens_of(&mut conn, user.principal.user_id).await.page(user)?;
    drop(conn);
    let page = TokensPage {
        t,
        layout: Layout::new(user, "", "/account/tokens"),
        tokens: token_items(&t, tz, rows, |id| format!("/account/tokens/{id}/revoke")),
        label,
        errors,
        new_token,
        notice,
    };
    Ok(render_status(status, &page))
}

async fn own_tokens(State(app): State<App>, user: PageUser, Query(q): Query<DoneQuery>) -> Result<Response, PageError> {
    let notice = (q.done == "revoked").then(|| user.tr.t("admin_users.done_revoked").to_owned());
    tokens_view(&app, &user, String::new(), Errors::default(), None, notice, StatusCode::OK).await
}

async fn create_own_token(
    State(app): State<App>,
    user: PageUser,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let label = match admin::validate_label(&form.label) {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => {
            let mut errors = Errors::default();
            errors.add("label", t.t("admin_users.err_label_empty"));
            return tokens_view(&app, &user, form.label, errors, None, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(_) => {
            let mut errors = Errors::default();
            errors.add("label", t.t("admin_users.err_label"));
            return tokens_view(&app, &user, form.label, errors, None, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let mut tx = app.pool.begin().await.page(&user)?;
    let token = users::create_token(&mut tx, user.principal.user_id, &label, user.now).await.page(&user)?;
    let id = admin::token_id(&mut tx, &token).await.page(&user)?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "token.create",
            ("api_token", id.to_string()),
            None,
            json!({"owner": user.principal.login, "label": label}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    tokens_view(&app, &user, String::new(), Errors::default(), Some(token), None, StatusCode::OK).await
}

/// Revoke one of one's own tokens; someone else's is not found (404), even for an admin
/// (who revokes it from the account's page).
async fn revoke_own_token(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = id.parse::<i64>().ok().filter(|id| *id > 0);
    let mut tx = app.pool.begin().await.page(&user)?;
    let token = match id {
        Some(id) => admin::find_token(&mut tx, id).await.page(&user)?,
        None => None,
    };
    let Some(token) = token.filter(|tk| tk.user_id == user.principal.user_id) else {
        return Err(PageError(AppError::not_found("token"), user.tr.locale));
    };
    revoke(&mut tx, &user, &token).await?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to("/account/tokens?done=revoked").into_response())
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

pub struct LeadField {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub max: u32,
    pub default: u32,
}

pub struct TlsOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    t: Tr,
    layout: Layout,
    input: SettingsDraft,
    leads: Vec<LeadField>,
    tls_modes: Vec<TlsOption>,
    errors: Errors,
    tz_locked: bool,
    /// Common zones offered in a list; any IANA name may be typed.
    zones: Vec<&'static str>,
    attachment_types: String,
    max_mb: i64,
    password_set: bool,
    notice: Option<String>,
}

fn lead_fields(t: &Tr, d: &SettingsDraft) -> Vec<LeadField> {
    let f = |name, label: &str, value: &str, c: Cadence| LeadField {
        name,
        label: t.t(label),
        value: value.to_owned(),
        max: admin::max_lead_days(c),
        default: c.default_lead_days(),
    };
    vec![
        f("lead_year", "admin_users.lead_year", &d.lead_year, Cadence::Year),
        f("lead_half", "admin_users.lead_half", &d.lead_half, Cadence::Half),
        f("lead_quarter", "admin_users.lead_quarter", &d.lead_quarter, Cadence::Quarter),
        f("lead_month", "admin_users.lead_month", &d.lead_month, Cadence::Month),
    ]
}

/// The file types attachments may have, as people name them.
fn attachment_types() -> String {
    "PDF, Word (doc/docx), Excel (xls/xlsx), PowerPoint (ppt/pptx), WPS, OFD, PNG, JPEG, GIF, WebP, TXT, CSV".to_owned()
}

fn problem_message(t: &Tr, p: SettingsProblem) -> String {
    match p {
        SettingsProblem::TimeZoneUnknown => t.t("admin_users.err_tz").to_owned(),
        SettingsProblem::TimeZoneLocked => t.t("admin_users.tz_locked").to_owned(),
        SettingsProblem::LeadDays(max) => t.f1("admin_users.err_lead", max),
        SettingsProblem::AttachmentSize => t.f1("admin_users.err_attachment", admin::MAX_ATTACHMENT_MB),
        SettingsProblem::MailHost => t.t("admin_users.err_mail_host").to_owned(),
        SettingsProblem::MailPort => t.t("admin_users.err_mail_port").to_owned(),
        SettingsProblem::MailTls => t.t("admin_users.err_mail_tls").to_owned(),
        SettingsProblem::MailUser | SettingsProblem::MailPassword => t.t("admin_users.err_one_line").to_owned(),
        SettingsProblem::MailFrom => t.t("admin_users.err_mail_from").to_owned(),
        SettingsProblem::MailFromMissing => t.t("admin_users.err_mail_from_missing").to_owned(),
    }
}

async fn settings_view(
    app: &App,
    user: &PageUser,
    mut input: SettingsDraft,
    errors: Errors,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let t = user.tr;
    let settings = app.settings();
    let mut conn = app.pool.acquire().await.page(user)?;
    let tz_locked = admin::duties_exist(&mut conn).await.page(user)?;
    drop(conn);
    // A password is never sent back into the page.
    input.mail_password.clear();
    input.mail_password_clear.clear();
    let page = SettingsPage {
        t,
        layout: Layout::new(user, "admin", "/admin/settings"),
        leads: lead_fields(&t, &input),
        tls_modes: admin::TLS_MODES
            .iter()
            .map(|m| TlsOption { value: m, label: t.t(&format!("admin_users.tls_{m}")) })
            .collect(),
        input,
        errors,
        tz_locked,
        zones: vec!["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei"],
        attachment_types: attachment_types(),
        max_mb: admin::MAX_ATTACHMENT_MB,
        password_set: admin::mail_password_set(&settings),
        notice,
    };
    Ok(render_status(status, &page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SavedQuery {
    saved: String,
    moved: String,
}

async fn settings_page(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Query(q): Query<SavedQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let notice = (!q.saved.is_empty()).then(|| match q.moved.parse::<u64>() {
        Ok(n) if n > 0 => format!("{}{}", t.t("admin_users.settings_saved"), t.f1("admin_users.periods_moved", n)),
        _ => t.t("admin_users.settings_saved").to_owned(),
    });
    let draft = SettingsDraft::of(&app.settings());
    settings_view(&app, &user, draft, Errors::default(), notice, StatusCode::OK).await
}

async fn save_settings(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Form(input): Form<SettingsDraft>,
) -> Result<Response, PageError> {
    let t = user.tr;
    app.ensure_duties(user.now).await.page(&user)?;
    let current = app.settings();
    let mut tx = app.pool.begin().await.page(&user)?;
    let tz_locked = admin::duties_exist(&mut tx).await.page(&user)?;
    let change = match admin::validate_settings(&input, current.tz, tz_locked) {
        Ok(c) => c,
        Err(problems) => {
            drop(tx);
            let mut errors = Errors::default();
            for (field, p) in problems {
                errors.add(field, problem_message(&t, p));
            }
            return settings_view(&app, &user, input, errors, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let saved = match admin::save_settings(&mut tx, &current, &change, user.now).await {
        Ok(s) => s,
        Err(AppError::Conflict(_)) => {
            drop(tx);
            let mut errors = Errors::default();
            errors.add("time_zone", t.t("admin_users.tz_locked"));
            return settings_view(&app, &user, input, errors, None, StatusCode::CONFLICT).await;
        }
        Err(e) => return Err(PageError(e, t.locale)),
    };
    if !saved.changed.is_empty() {
        audit::write(
            &mut tx,
            user.audit_entry("settings.update", ("settings", "deployment".to_owned()), None, saved.detail),
        )
        .await
        .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    app.reload_settings().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/settings?saved=1&moved={}", saved.periods_moved)).into_response())
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

/// Action codes the log holds, grouped by what they touch, each with its words in the
/// catalogue (`admin_users.act_<family>_<verb>`). Unknown codes show as themselves.
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("auth", &["login", "login_failed", "logout", "throttled", "refused", "password_changed"]),
    ("user", &["create", "update", "link_person", "password_reset", "disable", "enable"]),
    ("token", &["create", "revoke"]),
    ("settings", &["update"]),
    ("audit", &["verify", "export"]),
    ("org", &["create", "update", "rename", "kind", "move", "close", "reopen"]),
    ("kind", &["create", "update"]),
    ("person", &["create", "update"]),
    ("role", &["assign", "end", "handover"]),
    ("template", &["install"]),
    ("system", &["create"]),
    ("rule", &["create", "change", "retire", "waive_org"]),
    ("duty", &["waive"]),
    (
        "record",
        &["draft", "submit", "resubmit", "accept", "return", "correct", "withdraw", "redate", "attach", "detach"],
    ),
    ("import", &["orgs", "people", "roles"]),
    ("calendar_feed", &["create", "revoke"]),
];

fn is_known_action(code: &str) -> bool {
    code.split_once('.')
        .is_some_and(|(family, verb)| ACTIONS.iter().any(|(f, verbs)| *f == family && verbs.contains(&verb)))
}

/// An action in words: "提交记录" / "Record submitted"; an unknown code as itself.
pub fn action_words(t: &Tr, code: &str) -> String {
    if is_known_action(code) {
        t.t(&format!("admin_users.act_{}", code.replace('.', "_"))).to_owned()
    } else {
        code.to_owned()
    }
}

pub struct ActionGroup {
    pub family: String,
    pub label: String,
    pub actions: Vec<(String, String)>,
}

fn action_groups(t: &Tr) -> Vec<ActionGroup> {
    ACTIONS
        .iter()
        .map(|(family, verbs)| ActionGroup {
            family: format!("{family}."),
            label: t.t(&format!("admin_users.family_{family}")).to_owned(),
            actions: verbs
                .iter()
                .map(|v| {
                    let code = format!("{family}.{v}");
                    let words = action_words(t, &code);
                    (code, words)
                })
                .collect(),
        })
        .collect()
}

/// The audit filters as the form sends them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub org: String,
    pub sub: String,
    pub from: String,
    pub to: String,
    pub before: String,
    pub after: String,
    pub verified: String,
}

impl AuditQuery {
    /// The filters as a query string (without the cursor), for links.
    fn filter_query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("org", &self.org),
            ("sub", &self.sub),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            let v = v.trim();
            if !v.is_empty() {
                parts.push(format!("{k}={}", percent_encode(v)));
            }
        }
        parts.join("&")
    }
}

/// A date as people type it: 2026-03-01, 2026/3/1, 2026.3.1 or 2026年3月1日.
fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let d = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())?;
    (1900..=9999).contains(&d.year()).then_some(d)
}

/// The filter a query asks for, or the messages of its wrong fields.
async fn audit_filter(
    conn: &mut sqlx::PgConnection,
    t: &Tr,
    tz: Tz,
    q: &AuditQuery,
) -> sqlx::Result<Result<AuditFilter, Errors>> {
    let mut errors = Errors::default();
    let mut f = AuditFilter {
        actor: Some(q.actor.trim().to_lowercase()).filter(|a| !a.is_empty()).map(|a| a.chars().take(100).collect()),
        action: Some(q.action.trim().to_owned()).filter(|a| !a.is_empty()).map(|a| a.chars().take(64).collect()),
        subtree: !q.sub.is_empty(),
        ..Default::default()
    };
    let code = q.org.trim();
    if !code.is_empty() {
        match tree::org_by_code_any_case(conn, code).await? {
            Some(o) => f.org = Some((o.id, o.path)),
            None => errors.add("org", t.f1("admin_users.err_org_unknown", code)),
        }
    }
    let mut day = |field: &'static str, s: &str| -> Option<NaiveDate> {
        if s.trim().is_empty() {
            return None;
        }
        let d = parse_day(s);
        if d.is_none() {
            errors.add(field, t.t("admin_users.err_date"));
        }
        d
    };
    let from = day("from", &q.from);
    let to = day("to", &q.to);
    if let (Some(a), Some(b)) = (from, to)
        && b < a
    {
        errors.add("to", t.t("admin_users.err_date_order"));
    }
    f.from = from.map(|d| local_midnight(tz, d));
    f.until = to.and_then(|d| d.succ_opt()).map(|d| local_midnight(tz, d));
    Ok(if errors.is_empty() { Ok(f) } else { Err(errors) })
}

/// Object types the log holds, each with its word in the catalogue (`admin_users.obj_*`).
const OBJECT_TYPES: &[&str] = &[
    "login",
    "user",
    "api_token",
    "request",
    "settings",
    "audit_chain",
    "org",
    "org_kind",
    "person",
    "role_assignment",
    "template",
    "system",
    "rule",
    "duty",
    "record",
    "import",
    "export",
    "calendar_feed",
];

/// "记录 53" / "record 53": the object's kind in words, then its id.
fn object_words(t: &Tr, object_type: &str, object_id: &str) -> String {
    let kind = if OBJECT_TYPES.contains(&object_type) {
        t.t(&format!("admin_users.obj_{object_type}")).to_owned()
    } else {
        object_type.to_owned()
    };
    if object_id.is_empty() { kind } else { t.f2("admin_users.object_is", kind, object_id) }
}

/// JSON on one line with a space after each `:` and `,`, as people read it.
fn spaced_json(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(spaced_json).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), spaced_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Details up to this long show on one line; longer ones fold, pretty-printed.
const INLINE_DETAIL: usize = 120;

/// One entry as the page shows it.
pub struct AuditItem {
    pub id: i64,
    pub when: String,
    pub actor: String,
    pub actor_href: Option<String>,
    pub action: String,
    pub action_code: String,
    pub object: String,
    pub object_href: Option<String>,
    pub org: Option<(String, String)>,
    /// The detail on one line when short; none when empty.
    pub detail_inline: Option<String>,
    /// A longer detail, pretty-printed, and its first characters for the fold's summary.
    pub detail_pretty: Option<(String, String)>,
    pub ip: String,
    pub sealed: bool,
}

/// 2026年3月26日 16:05:09 in the deployment's zone.
fn instant_seconds(t: &Tr, tz: Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    format!("{} {}", format::date(t, local.date_naive()), local.format("%H:%M:%S"))
}

fn audit_item(t: &Tr, tz: Tz, r: AuditRow) -> AuditItem {
    let is_login = users::normalize_login(&r.actor).is_ok_and(|l| l == r.actor)
        && !matches!(r.actor.as_str(), "anonymous" | "system" | "cli");
    let object_href = match r.object_type.as_str() {
        "user" => Some(format!("/admin/users/{}", percent_encode(&r.object_id))),
        "record" => r.object_id.parse::<i64>().ok().map(|id| format!("/records/{id}")),
        "org" => Some(format!("/admin/orgs/{}", percent_encode(&r.object_id))),
        "person" => r.object_id.parse::<i64>().ok().map(|id| format!("/admin/people/{id}")),
        _ => None,
    };
    let compact = match &r.detail {
        Value::Object(m) if m.is_empty() => None,
        Value::Null => None,
        v => Some(spaced_json(v)),
    };
    let (detail_inline, detail_pretty) = match compact {
        Some(c) if c.chars().count() <= INLINE_DETAIL => (Some(c), None),
        Some(c) => {
            let preview: String = c.chars().take(INLINE_DETAIL - 20).collect();
            (None, serde_json::to_string_pretty(&r.detail).ok().map(|p| (format!("{preview}…"), p)))
        }
        None => (None, None),
    };
    AuditItem {
        id: r.id,
        when: instant_seconds(t, tz, r.at),
        actor_href: is_login.then(|| format!("/admin/users/{}", r.actor)),
        actor: r.actor,
        action: action_words(t, &r.action),
        action_code: r.action,
        object: object_words(t, &r.object_type, &r.object_id),
        object_href,
        org: r.org_code.map(|c| (c, r.org_name.unwrap_or_default())),
        detail_inline,
        detail_pretty,
        ip: r.ip.unwrap_or_default(),
        sealed: r.seal_no.is_some(),
    }
}

/// The chain's state as the page shows it.
pub struct ChainStatus {
    pub sealed: i64,
    pub unsealed: i64,
    /// When it was last verified, by whom, and what was found.
    pub last: Option<(String, String, bool, String)>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    t: Tr,
    layout: Layout,
    q: AuditQuery,
    groups: Vec<ActionGroup>,
    /// The typed action when it is none of the offered ones.
    other_action: Option<String>,
    errors: Errors,
    items: Vec<AuditItem>,
    newer: Option<String>,
    older: Option<String>,
    newest: Option<String>,
    export: String,
    chain: ChainStatus,
    /// The result of "verify now", right after it ran.
    verified: Option<(bool, String)>,
}

async fn audit_page(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let filter = audit_filter(&mut conn, &t, tz, &q).await.page(&user)?;
    let cursor = match (q.before.trim().parse::<i64>(), q.after.trim().parse::<i64>()) {
        (Ok(b), _) => Cursor::Before(b),
        (_, Ok(a)) => Cursor::After(a),
        _ => Cursor::Newest,
    };
    let (rows, more, errors) = match &filter {
        Ok(f) => {
            let (rows, more) = admin::audit_page(&mut conn, f, cursor, admin::AUDIT_PAGE).await.page(&user)?;
            (rows, more, Errors::default())
        }
        Err(e) => (vec![], false, e.clone()),
    };
    let (sealed, unsealed) = admin::chain_counts(&mut conn).await.page(&user)?;
    let last = admin::last_verification(&mut conn).await.page(&user)?;
    drop(conn);
    let fq = q.filter_query();
    let link = |cursor: String| {
        let mut s = String::from("/admin/audit?");
        if !fq.is_empty() {
            s.push_str(&fq);
            s.push('&');
        }
        s.push_str(&cursor);
        s
    };
    let (first, last_id) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id));
    // Newer entries exist when we came from an older page, or more lie beyond going up.
    let newer = match cursor {
        Cursor::Newest => None,
        Cursor::Before(_) => first.map(|id| link(format!("after={id}"))),
        Cursor::After(_) if more => first.map(|id| link(format!("after={id}"))),
        Cursor::After(_) => None,
    };
    let older = match cursor {
        Cursor::After(_) => last_id.map(|id| link(format!("before={id}"))),
        _ if more => last_id.map(|id| link(format!("before={id}"))),
        _ => None,
    };
    let newest = (cursor != Cursor::Newest)
        .then(|| if fq.is_empty() { "/admin/audit".to_owned() } else { format!("/admin/audit?{fq}") });
    let export = if fq.is_empty() { "/admin/audit/export".to_owned() } else { format!("/admin/audit/export?{fq}") };
    let chain_last = last.map(|l| {
        let ok = l.detail.get("intact").and_then(Value::as_bool).unwrap_or(false);
        let problem = l.detail.get("problem").and_then(Value::as_str).unwrap_or("").to_owned();
        (format::instant(&t, tz, l.at), l.actor, ok, problem)
    });
    let verified = (!q.verified.is_empty())
        .then(|| chain_last.as_ref().map(|(_, _, ok, problem)| (*ok, problem.clone())))
        .flatten();
    let groups = action_groups(&t);
    let action = q.action.trim();
    let offered = groups.iter().any(|g| g.family == action || g.actions.iter().any(|(c, _)| c == action));
    let other_action = (!action.is_empty() && !offered).then(|| action.to_owned());
    let here = if fq.is_empty() { "/admin/audit".to_owned() } else { format!("/admin/audit?{fq}") };
    let page = AuditPage {
        t,
        layout: Layout::new(&user, "admin", &here),
        groups,
        other_action,
        errors,
        items: rows.into_iter().map(|r| audit_item(&t, tz, r)).collect(),
        newer,
        older,
        newest,
        export,
        chain: ChainStatus { sealed, unsealed, last: chain_last },
        verified,
        q,
    };
    let status = if page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(render_status(status, &page))
}

/// A CSV cell that a spreadsheet will not run as a formula.
fn csv_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() }
}

/// The filtered log as CSV (UTF-8 with a BOM, so that Excel reads the Chinese), oldest
/// last, at most [`admin::EXPORT_LIMIT`] entries.
async fn export_audit(
    State(app): State<App>,
    AdminUser(user): AdminUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let filter = match audit_filter(&mut conn, &t, tz, &q).await.page(&user)? {
        Ok(f) => f,
        Err(_) => return Err(PageError(AppError::bad_input("filter", "a filter is wrong"), t.locale)),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "time",
        "actor",
        "action",
        "action_words",
        "object_type",
        "object_id",
        "org",
        "org_name",
        "ip",
        "detail",
    ];
    w.write_record(header).map_err(|e| PageError(AppError::Internal(e.into()), t.locale))?;
    let mut cursor = Cursor::Newest;
    let mut written = 0i64;
    while written < admin::EXPORT_LIMIT {
        let batch = (admin::EXPORT_LIMIT - written).min(2000);
        let (rows, more) = admin::audit_page(&mut conn, &filter, cursor, batch).await.page(&user)?;
        for r in &rows {
            let at = r.at.with_timezone(&tz).to_rfc3339();
            let record = [
                r.id.to_string(),
                at,
                csv_cell(&r.actor),
                csv_cell(&r.action),
                csv_cell(&action_words(&t, &r.action)),
                csv_cell(&r.object_type),
                csv_cell(&r.object_id),
                csv_cell(r.org_code.as_deref().unwrap_or("")),
                csv_cell(r.org_name.as_deref().unwrap_or("")),
                csv_cell(r.ip.as_deref().unwrap_or("")),
                csv_cell(&r.detail.to_string()),
            ];
            w.write_record(&record).map_err(|e| PageError(AppError::Internal(e.into()), t.locale))?;
        }
        written += rows.len() as i64;
        match rows.last() {
            Some(r) if more => cursor = Cursor::Before(r.id),
            _ => break,
        }
    }
    let mut tx = app.pool.begin().await.page(&user)?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "audit.export",
            (admin::CHAIN_OBJECT.0, "export".to_owned()),
            None,
            json!({"filter": q.filter_query(), "entries": written}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    drop(conn);
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend(w.into_inner().map_err(|e| PageError(AppError::Internal(anyhow::anyhow!("{e}")), t.locale))?);
    let name = format!("audit-{}.csv", user.today.format("%Y%m%d"));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Walk the whole chain now, record what was found, and show it.
async fn verify_chain(State(app): State<App>, AdminUser(user): AdminUser) -> Result<Response, PageError> {
    let v = audit::verify(&app.pool).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "audit.verify",
            (admin::CHAIN_OBJECT.0, admin::CHAIN_OBJECT.1.to_owned()),
            None,
            json!({"intact": v.problem.is_none(), "sealed": v.sealed, "unsealed": v.unsealed, "problem": v.problem}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to("/admin/audit?verified=1").into_response())
}

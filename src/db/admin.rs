//! Administration of accounts, API tokens, deployment settings and the audit log: the
//! bounded listings the admin pages and API read, and the changes `users.rs` and
//! `settings.rs` do not make (linking an account to another person, disabling, revoking a
//! token, moving reminder windows after a change of lead days). Every listing is bounded
//! and names the index it uses.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::settings::{self, LeadDays, Settings};
use super::users::{self, User};
use crate::domain::period::Cadence;
use crate::domain::time::{local_date, local_midnight};
use crate::error::{AppError, AppResult};
use crate::secret;

/// Accounts per page of the list.
pub const USERS_PAGE: i64 = 30;
/// The total of a listing is counted up to this many.
pub const TOTAL_CAP: i64 = 100_000;
/// Tokens listed for one user (the active ones first).
pub const TOKEN_LIMIT: i64 = 100;
/// Audit entries per page.
pub const AUDIT_PAGE: i64 = 50;
/// Audit entries in one CSV export.
pub const EXPORT_LIMIT: i64 = 50_000;

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

/// An account as the list and its page show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub person_id: i64,
    pub person_code: Option<String>,
    pub is_admin: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    /// The latest activity of any live session.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Tokens not revoked.
    pub tokens: i64,
}

/// Which accounts a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountFilter {
    #[default]
    All,
    Admins,
    Disabled,
}

impl AccountFilter {
    pub fn parse(s: &str) -> AccountFilter {
        match s {
            "admins" => AccountFilter::Admins,
            "disabled" => AccountFilter::Disabled,
            _ => AccountFilter::All,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountFilter::All => "",
            AccountFilter::Admins => "admins",
            AccountFilter::Disabled => "disabled",
        }
    }
}

macro_rules! select_account {
    ($where:literal) => {
        concat!(
            "select u.id, u.login, p.name, u.person_id, p.code as person_code, u.is_admin, u.disabled_at,
                    u.created_at, u.password_changed_at,
                    (select max(s.last_seen_at) from session s where s.user_id = u.id) as last_seen_at,
                    (select count(*) from api_token t where t.user_id = u.id and t.revoked_at is null) as tokens
             from app_user u join person p on p.id = u.person_id ",
            $where
        )
    };
}

/// Text for LIKE with LIKE's own characters escaped.
fn escape_like(q: &str) -> String {
    let mut escaped = String::with_capacity(q.len());
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `text%` (lower-cased, for logins) and `%text%` for LIKE.
fn like_patterns(q: &str) -> (String, String) {
    let escaped = escape_like(q);
    (format!("{}%", escaped.to_lowercase()), format!("%{escaped}%"))
}

/// One page (from 1) of accounts whose login starts with `q` or whose name contains it,
/// by login, with how many match (up to [`TOTAL_CAP`]). Index: `app_user_login_key`.
pub async fn accounts_page(
    conn: &mut PgConnection,
    q: &str,
    filter: AccountFilter,
    page: i64,
) -> sqlx::Result<(Vec<Account>, i64)> {
    let q = q.trim();
    let (prefix, substring) = like_patterns(q);
    let offset = (page.max(1) - 1) * USERS_PAGE;
    let rows: Vec<Account> = sqlx::query_as(select_account!(
        "where ($1 = '' or u.login like $2 escape '\\' or p.name ilike $3 escape '\\')
           and ($4 = '' or ($4 = 'admins' and u.is_admin) or ($4 = 'disabled' and u.disabled_at is not null))
         order by u.login
         limit $5 offset $6"
    ))
    .bind(q)
    .bind(&prefix)
    .bind(&substring)
    .bind(filter.as_str())
    .bind(USERS_PAGE)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "select count(*) from (
             select 1 from app_user u join person p on p.id = u.person_id
             where ($1 = '' or u.login like $2 escape '\\' or p.name ilike $3 escape '\\')
               and ($4 = '' or ($4 = 'admins' and u.is_admin) or ($4 = 'disabled' and u.disabled_at is not null))
             limit $5) x",
    )
    .bind(q)
    .bind(&prefix)
    .bind(&substring)
    .bind(filter.as_str())
    .bind(TOTAL_CAP)
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows, total))
}

pub async fn find_account(conn: &mut PgConnection, login: &str) -> sqlx::Result<Option<Account>> {
    sqlx::query_as(select_account!("where u.login = $1")).bind(login.trim().to_lowercase()).fetch_optional(conn).await
}

pub async fn find_account_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Account>> {
    sqlx::query_as(select_account!("where u.id = $1")).bind(id).fetch_optional(conn).await
}

/// A role a person holds today, as lists of accounts show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HeldRole {
    pub person_id: i64,
    pub org_code: String,
    pub org_name: String,
    pub role: String,
    pub acting: bool,
}

/// The roles the given people hold on `day`, at most `per_person` each, in tree order.
/// Index: `role_assignment_person`.
pub async fn roles_held(
    conn: &mut PgConnection,
    person_ids: &[i64],
    day: NaiveDate,
    per_person: i64,
) -> sqlx::Result<Vec<HeldRole>> {
    sqlx::query_as(
        "select p.id as person_id, r.org_code, r.org_name, r.role, r.acting
         from unnest($1::bigint[]) as p(id)
         cross join lateral (
             select o.code as org_code, o.name as org_name, ra.role, ra.acting
             from role_assignment ra join org o on o.id = ra.org_id
             where ra.person_id = p.id and ra.starts_on <= $2 and (ra.ends_on is null or ra.ends_on >= $2)
             order by o.path, ra.role
             limit $3) r",
    )
    .bind(person_ids)
    .bind(day)
    .bind(per_person)
    .fetch_all(conn)
    .await
}

/// The login of the account a person has, if any.
pub async fn login_of_person(conn: &mut PgConnection, person_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select login from app_user where person_id = $1").bind(person_id).fetch_optional(conn).await
}

/// A strong random password for a new account or a reset, shown once: random bytes as
/// URL-safe base64 (22 characters, 128 random bits).
pub fn generate_password() -> String {
    loop {
        let p = secret::random_token(16);
        if users::check_password(&p).is_ok() {
            return p;
        }
    }
}

/// Create an account for an existing person who has none (their name is kept).
pub async fn create_for_person(
    conn: &mut PgConnection,
    login: &str,
    password: &str,
    person_id: i64,
    admin: bool,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let login = users::normalize_login(login)?;
    users::check_password(password)?;
    if users::find_by_login(conn, &login).await?.is_some() {
        return Err(AppError::conflict(format!("the login {login:?} is taken")));
    }
    let exists: bool = sqlx::query_scalar("select exists (select 1 from person where id = $1)")
        .bind(person_id)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Err(AppError::bad_input("person", "no such person"));
    }
    if let Some(other) = login_of_person(conn, person_id).await? {
        return Err(AppError::conflict(format!("this person already has the account {other:?}")));
    }
    let hash = secret::hash_password(password)?;
    let id: i64 = sqlx::query_scalar(
        "insert into app_user (login, person_id, password_hash, is_admin, password_changed_at, created_at)
         values ($1, $2, $3, $4, $5, $5) returning id",
    )
    .bind(&login)
    .bind(person_id)
    .bind(&hash)
    .bind(admin)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(users::find_by_id(conn, id).await?.ok_or_else(|| anyhow::anyhow!("the new account vanished"))?)
}

/// The enabled admins, locked until the transaction ends, so that two admins removing
/// each other at once cannot leave the portal without one.
pub async fn lock_enabled_admins(conn: &mut PgConnection) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("select id from app_user where is_admin and disabled_at is null order by id for update")
        .fetch_all(conn)
        .await
}

/// How many enabled admins there are.
pub async fn enabled_admins(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from app_user where is_admin and disabled_at is null").fetch_one(conn).await
}

/// Whether taking `user_id`'s admin powers away (demoting or disabling) would leave no
/// enabled admin. Call inside the transaction that makes the change.
pub async fn is_last_admin(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<bool> {
    let admins = lock_enabled_admins(conn).await?;
    Ok(admins == [user_id])
}

/// Rename the person an account is linked to.
pub async fn rename(conn: &mut PgConnection, user_id: i64, name: &str) -> AppResult<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("name", "a name is 1–100 characters"));
    }
    sqlx::query("update person set name = $2 where id = (select person_id from app_user where id = $1)")
        .bind(user_id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_admin(conn: &mut PgConnection, user_id: i64, admin: bool) -> sqlx::Result<()> {
    sqlx::query("update app_user set is_admin = $2 where id = $1").bind(user_id).bind(admin).execute(conn).await?;
    Ok(())
}

/// Link an account to another person, who must have no account. The person it leaves
/// keeps their roles and history, without an account.
pub async fn link_person(conn: &mut PgConnection, user_id: i64, person_id: i64) -> AppResult<()> {
    let exists: bool = sqlx::query_scalar("select exists (select 1 from person where id = $1)")
        .bind(person_id)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Err(AppError::bad_input("person", "no such person"));
    }
    let holder: Option<i64> = sqlx::query_scalar("select id from app_user where person_id = $1")
        .bind(person_id)
        .fetch_optional(&mut *conn)
        .await?;
    match holder {
        Some(id) if id == user_id => Ok(()),
        Some(_) => Err(AppError::conflict("this person already has another account")),
        None => {
            sqlx::query("update app_user set person_id = $2 where id = $1")
                .bind(user_id)
                .bind(person_id)
                .execute(conn)
                .await?;
            Ok(())
        }
    }
}

/// Disable an account (its sessions end; its tokens are refused from now on) or enable
/// it again. Returns whether anything changed.
pub async fn set_disabled(
    conn: &mut PgConnection,
    user_id: i64,
    disabled: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let changed = if disabled {
        sqlx::query("update app_user set disabled_at = $2 where id = $1 and disabled_at is null")
            .bind(user_id)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    } else {
        sqlx::query("update app_user set disabled_at = null where id = $1 and disabled_at is not null")
            .bind(user_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    };
    if disabled {
        end_sessions(conn, user_id).await?;
    }
    Ok(changed > 0)
}

/// End every session of a user.
pub async fn end_sessions(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("delete from session where user_id = $1").bind(user_id).execute(conn).await?.rows_affected())
}

// ---------------------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------------------

/// Record a token's use at most once a minute (DESIGN.md section 6), so that a busy
/// client does not write on every request. Returns whether it wrote.
pub async fn touch_token(conn: &mut PgConnection, token: &str, now: DateTime<Utc>) -> sqlx::Result<bool> {
    let n = sqlx::query(
        "update api_token set last_used_at = $2
         where token_hash = $1 and revoked_at is null
           and (last_used_at is null or last_used_at <= $2 - interval '1 minute' or last_used_at > $2)",
    )
    .bind(secret::token_hash(token))
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// A token as lists show it; never the token itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub login: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A user's tokens, the active ones first, then the latest. Index: `api_token_user`.
pub async fn tokens_of(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(
        "select t.id, t.user_id, u.login, t.label, t.created_at, t.last_used_at, t.revoked_at
         from api_token t join app_user u on u.id = t.user_id
         where t.user_id = $1
         order by (t.revoked_at is not null), t.created_at desc, t.id desc
         limit $2",
    )
    .bind(user_id)
    .bind(TOKEN_LIMIT)
    .fetch_all(conn)
    .await
}

pub async fn find_token(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as(
        "select t.id, t.user_id, u.login, t.label, t.created_at, t.last_used_at, t.revoked_at
         from api_token t join app_user u on u.id = t.user_id where t.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The id of a token just created, by its value.
pub async fn token_id(conn: &mut PgConnection, token: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("select id from api_token where token_hash = $1")
        .bind(secret::token_hash(token))
        .fetch_one(conn)
        .await
}

/// Revoke a token; returns whether it was active.
pub async fn revoke_token(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> sqlx::Result<bool> {
    let n = sqlx::query("update api_token set revoked_at = $2 where id = $1 and revoked_at is null")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// A token's label: trimmed, at most 100 characters, no control characters.
pub fn validate_label(label: &str) -> AppResult<String> {
    let label = label.trim();
    if label.chars().count() > 100 {
        return Err(AppError::bad_input("label", "a label has at most 100 characters"));
    }
    if label.chars().any(char::is_control) {
        return Err(AppError::bad_input("label", "a label is one line of text"));
    }
    Ok(label.to_owned())
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/// Whether any duty exists (then the time zone is fixed).
pub async fn duties_exist(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from duty)").fetch_one(conn).await
}

/// The mail server the notifications of a later issue send through. The password is kept
/// apart (setting `mail_password`) so that this can be shown and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailServer {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    pub user: String,
    pub from: String,
}

pub const TLS_MODES: [&str; 3] = ["starttls", "tls", "none"];

/// The usual port of a TLS mode.
pub fn default_port(tls: &str) -> u16 {
    match tls {
        "tls" => 465,
        "none" => 25,
        _ => 587,
    }
}

/// The stored mail server, if one is configured.
pub fn mail_server(s: &Settings) -> Option<MailServer> {
    s.other.get("mail").and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Whether a mail password is stored (it is never shown).
pub fn mail_password_set(s: &Settings) -> bool {
    s.other.get("mail_password").and_then(|v| v.as_str()).is_some_and(|p| !p.is_empty())
}

/// Largest lead days per cadence: less than the period itself.
pub fn max_lead_days(c: Cadence) -> u32 {
    match c {
        Cadence::Year => 365,
        Cadence::Half => 181,
        Cadence::Quarter => 90,
        Cadence::Month => 28,
    }
}

/// Largest attachment limit, in MB.
pub const MAX_ATTACHMENT_MB: i64 = 1024;

/// The settings as a form or a JSON body gives them: text, checked by [`validate_settings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SettingsDraft {
    pub time_zone: String,
    pub lead_year: String,
    pub lead_half: String,
    pub lead_quarter: String,
    pub lead_month: String,
    pub attachment_max_mb: String,
    pub mail_host: String,
    pub mail_port: String,
    pub mail_tls: String,
    pub mail_user: String,
    pub mail_from: String,
    /// Empty keeps the stored password.
    pub mail_password: String,
    /// Non-empty removes the stored password.
    pub mail_password_clear: String,
}

impl SettingsDraft {
    /// The draft that changes nothing.
    pub fn of(s: &Settings) -> SettingsDraft {
        let mail = mail_server(s);
        SettingsDraft {
            time_zone: s.tz.name().to_owned(),
            lead_year: s.lead_days.year.to_string(),
            lead_half: s.lead_days.half.to_string(),
            lead_quarter: s.lead_days.quarter.to_string(),
            lead_month: s.lead_days.month.to_string(),
            attachment_max_mb: ((s.attachment_max_bytes + (1 << 20) - 1) >> 20).to_string(),
            mail_host: mail.as_ref().map(|m| m.host.clone()).unwrap_or_default(),
            mail_port: mail.as_ref().map(|m| m.port.to_string()).unwrap_or_default(),
            mail_tls: mail.as_ref().map(|m| m.tls.clone()).unwrap_or_else(|| "starttls".to_owned()),
            mail_user: mail.as_ref().map(|m| m.user.clone()).unwrap_or_default(),
            mail_from: mail.as_ref().map(|m| m.from.clone()).unwrap_or_default(),
            mail_password: String::new(),
            mail_password_clear: String::new(),
        }
    }
}

/// What is wrong with one field of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsProblem {
    TimeZoneUnknown,
    TimeZoneLocked,
    /// Lead days must be a whole number from 0 to this.
    LeadDays(u32),
    AttachmentSize,
    MailHost,
    MailPort,
    MailTls,
    MailUser,
    MailPassword,
    MailFrom,
    MailFromMissing,
}

impl SettingsProblem {
    /// The message in English, for the API.
    pub fn message(self) -> String {
        match self {
            SettingsProblem::TimeZoneUnknown => "not an IANA time zone such as Asia/Shanghai".to_owned(),
            SettingsProblem::TimeZoneLocked => "the time zone cannot change once duties exist".to_owned(),
            SettingsProblem::LeadDays(max) => format!("a whole number of days from 0 to {max}"),
            SettingsProblem::AttachmentSize => format!("a whole number of MB from 1 to {MAX_ATTACHMENT_MB}"),
            SettingsProblem::MailHost => "a host name or IP address, e.g. smtp.example.gov.cn".to_owned(),
            SettingsProblem::MailPort => "a port from 1 to 65535".to_owned(),
            SettingsProblem::MailTls => "one of starttls, tls, none".to_owned(),
            SettingsProblem::MailUser => "at most 200 characters on one line".to_owned(),
            SettingsProblem::MailPassword => "at most 200 characters on one line".to_owned(),
            SettingsProblem::MailFrom => "an e-mail address such as portal@example.gov.cn".to_owned(),
            SettingsProblem::MailFromMissing => "a mail server needs a sender address".to_owned(),
        }
    }
}

/// A stored mail password: kept, replaced, or removed.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordChange {
    Keep,
    Set(String),
    Clear,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself, also not in a debug line.
        f.write_str(match self {
            PasswordChange::Keep => "Keep",
            PasswordChange::Set(_) => "Set(…)",
            PasswordChange::Clear => "Clear",
        })
    }
}

/// Valid settings, ready to store.
#[derive(Debug, Clone)]
pub struct SettingsChange {
    pub tz: Tz,
    pub lead_days: LeadDays,
    pub attachment_max_bytes: i64,
    /// None: no mail server (the host was left empty).
    pub mail: Option<MailServer>,
    pub password: PasswordChange,
}

fn one_line(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn valid_host(h: &str) -> bool {
    (1..=253).contains(&h.len())
        && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        && !h.starts_with(['.', '-'])
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && one_line(e, 200)
        && !e.contains(char::is_whitespace)
        && !e.contains(['<', '>', ',', ';', '"'])
}

/// Check a draft; `tz_locked` when duties exist. Every wrong field is named.
pub fn validate_settings(
    d: &SettingsDraft,
    current_tz: Tz,
    tz_locked: bool,
) -> Result<SettingsChange, Vec<(&'static str, SettingsProblem)>> {
    let mut problems = Vec::new();
    let tz = match d.time_zone.trim().parse::<Tz>() {
        Ok(tz) if tz != current_tz && tz_locked => {
            problems.push(("time_zone", SettingsProblem::TimeZoneLocked));
            current_tz
        }
        Ok(tz) => tz,
        Err(_) => {
            problems.push(("time_zone", SettingsProblem::TimeZoneUnknown));
            current_tz
        }
    };
    let mut lead = |field: &'static str, text: &str, cadence: Cadence| -> u32 {
        let max = max_lead_days(cadence);
        match text.trim().parse::<u32>() {
            Ok(n) if n <= max => n,
            _ => {
                problems.push((field, SettingsProblem::LeadDays(max)));
                0
            }
        }
    };
    let lead_days = LeadDays {
        year: lead("lead_year", &d.lead_year, Cadence::Year),
        half: lead("lead_half", &d.lead_half, Cadence::Half),
        quarter: lead("lead_quarter", &d.lead_quarter, Cadence::Quarter),
        month: lead("lead_month", &d.lead_month, Cadence::Month),
    };
    let attachment_max_bytes = match d.attachment_max_mb.trim().parse::<i64>() {
        Ok(mb) if (1..=MAX_ATTACHMENT_MB).contains(&mb) => mb << 20,
        _ => {
            problems.push(("attachment_max_mb", SettingsProblem::AttachmentSize));
            0
        }
    };
    let host = d.mail_host.trim();
    let tls = d.mail_tls.trim();
    let tls = if tls.is_empty() { "starttls" } else { tls };
    if !TLS_MODES.contains(&tls) {
        problems.push(("mail_tls", SettingsProblem::MailTls));
    }
    let port = match d.mail_port.trim() {
        "" => default_port(tls),
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(("mail_port", SettingsProblem::MailPort));
                0
            }
        },
    };
    let user = d.mail_user.trim();
    if !one_line(user, 200) {
        problems.push(("mail_user", SettingsProblem::MailUser));
    }
    let from = d.mail_from.trim();
    if !host.is_empty() && !valid_host(host) {
        problems.push(("mail_host", SettingsProblem::MailHost));
    }
    if !from.is_empty() && !valid_email(from) {
        problems.push(("mail_from", SettingsProblem::MailFrom));
    } else if from.is_empty() && !host.is_empty() {
        problems.push(("mail_from", SettingsProblem::MailFromMissing));
    }
    let password = if !d.mail_password_clear.trim().is_empty() {
        PasswordChange::Clear
    } else if d.mail_password.is_empty() {
        PasswordChange::Keep
    } else if one_line(&d.mail_password, 200) {
        PasswordChange::Set(d.mail_password.clone())
    } else {
        problems.push(("mail_password", SettingsProblem::MailPassword));
        PasswordChange::Keep
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mail = (!host.is_empty()).then(|| MailServer {
        host: host.to_owned(),
        port,
        tls: tls.to_owned(),
        user: user.to_owned(),
        from: from.to_owned(),
    });
    Ok(SettingsChange { tz, lead_days, attachment_max_bytes, mail, password })
}

/// What [`save_settings`] changed, for the audit entry and the page.
#[derive(Debug, Clone, Default)]
pub struct SettingsSaved {
    pub changed: Vec<&'static str>,
    pub periods_moved: u64,
    /// The audit entry's detail: each change from and to, never the mail password.
    pub detail: serde_json::Value,
}

/// Store what changed, in the caller's transaction, and move the reminder windows after a
/// change of lead days. The time zone is refused (409) once duties exist. The caller
/// reloads the settings after committing.
pub async fn save_settings(
    conn: &mut PgConnection,
    current: &Settings,
    change: &SettingsChange,
    now: DateTime<Utc>,
) -> AppResult<SettingsSaved> {
    use serde_json::json;
    let mut saved = SettingsSaved::default();
    let mut detail = serde_json::Map::new();
    if change.tz != current.tz {
        settings::store(conn, "time_zone", &json!(change.tz.name())).await?;
        saved.changed.push("time_zone");
        detail.insert("time_zone".into(), json!({"from": current.tz.name(), "to": change.tz.name()}));
    }
    if change.lead_days != current.lead_days {
        settings::store(conn, "lead_days", &serde_json::to_value(&change.lead_days).map_err(anyhow::Error::from)?)
            .await?;
        saved.periods_moved = apply_lead_days(conn, change.tz, &current.lead_days, &change.lead_days, now).await?;
        saved.changed.push("lead_days");
        detail.insert(
            "lead_days".into(),
            json!({"from": current.lead_days, "to": change.lead_days, "periods_moved": saved.periods_moved}),
        );
    }
    if change.attachment_max_bytes != current.attachment_max_bytes {
        settings::store(conn, "attachment_max_bytes", &json!(change.attachment_max_bytes)).await?;
        saved.changed.push("attachment_max_bytes");
        detail.insert(
            "attachment_max_bytes".into(),
            json!({"from": current.attachment_max_bytes, "to": change.attachment_max_bytes}),
        );
    }
    let old_mail = mail_server(current);
    if change.mail != old_mail {
        let value = match &change.mail {
            Some(m) => serde_json::to_value(m).map_err(anyhow::Error::from)?,
            None => serde_json::Value::Null,
        };
        settings::store(conn, "mail", &value).await?;
        saved.changed.push("mail");
        detail.insert("mail".into(), json!({"from": old_mail, "to": change.mail}));
    }
    match &change.password {
        PasswordChange::Keep => {}
        PasswordChange::Set(p) => {
            settings::store(conn, "mail_password", &json!(p)).await?;
            saved.changed.push("mail_password");
            detail.insert("mail_password".into(), json!("changed"));
        }
        PasswordChange::Clear if mail_password_set(current) => {
            settings::store(conn, "mail_password", &json!("")).await?;
            saved.changed.push("mail_password");
            detail.insert("mail_password".into(), json!("removed"));
        }
        PasswordChange::Clear => {}
    }
    saved.detail = serde_json::Value::Object(detail);
    Ok(saved)
}

/// After the deployment's lead days changed from `old` to `new`: move the start of the
/// reminder window of every rule period whose window has not opened yet at `now` and
/// whose rule has no lead days of its own. Periods already in (or past) their window keep
/// it, so nobody is reminded twice or loses a reminder that has been sent; periods not
/// started yet are created later with the new values. Returns how many periods moved.
pub async fn apply_lead_days(
    conn: &mut PgConnection,
    tz: Tz,
    old: &LeadDays,
    new: &LeadDays,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let changed: Vec<&str> = [Cadence::Year, Cadence::Half, Cadence::Quarter, Cadence::Month]
        .into_iter()
        .filter(|c| old.of(*c) != new.of(*c))
        .map(cadence_code)
        .collect();
    if changed.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(i64, String, String, DateTime<Utc>)> = sqlx::query_as(
        "select rp.rule_id, rp.period_key, r.cadence, rp.due_at
         from rule_period rp
         join rule r on r.id = rp.rule_id
         join rule_version v on v.id = rp.version_id
         where v.lead_days is null and r.cadence = any($1)
           and rp.due_soon_at > $2 and rp.due_soon_swept_at is null
         order by rp.rule_id, rp.period_key
         for update of rp",
    )
    .bind(&changed)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut rule_ids = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut soon = Vec::with_capacity(rows.len());
    for (rule_id, key, cadence, due_at) in rows {
        let Some(cadence) = parse_cadence(&cadence) else { continue };
        let due_day: NaiveDate = local_date(tz, due_at);
        let lead = chrono::Days::new(u64::from(new.of(cadence)));
        let soon_day = due_day.checked_sub_days(lead).unwrap_or(due_day);
        rule_ids.push(rule_id);
        keys.push(key);
        soon.push(local_midnight(tz, soon_day).min(due_at));
    }
    if rule_ids.is_empty() {
        return Ok(0);
    }
    let n = sqlx::query(
        "update rule_period rp set due_soon_at = s.soon
         from unnest($1::bigint[], $2::text[], $3::timestamptz[]) as s(rule_id, period_key, soon)
         where rp.rule_id = s.rule_id and rp.period_key = s.period_key",
    )
    .bind(&rule_ids)
    .bind(&keys)
    .bind(&soon)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n)
}

fn cadence_code(c: Cadence) -> &'static str {
    match c {
        Cadence::Year => "year",
        Cadence::Half => "half",
        Cadence::Quarter => "quarter",
        Cadence::Month => "month",
    }
}

fn parse_cadence(s: &str) -> Option<Cadence> {
    match s {
        "year" => Some(Cadence::Year),
        "half" => Some(Cadence::Half),
        "quarter" => Some(Cadence::Quarter),
        "month" => Some(Cadence::Month),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

/// What the audit page and API filter by; every part optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The actor as written in the entry (a login, `anonymous`, `system`, `cli`).
    pub actor: Option<String>,
    /// A prefix of the action code (`record.` or `record.submit`).
    pub action: Option<String>,
    /// The organisation's id and path; with `subtree`, its descendants too.
    pub org: Option<(i64, Vec<i64>)>,
    pub subtree: bool,
    /// Entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// One audit entry as the page shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub org_code: Option<String>,
    pub org_name: Option<String>,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub seal_no: Option<i64>,
}

/// Where a page of the log starts: before an id (older) or after one (newer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    Before(i64),
    After(i64),
}

/// The audit entries matching a filter, then `$tail` (the order and limit). Parameters:
/// $1 before id, $2 after id, $3 actor, $4 action LIKE pattern, $5 org id, $6 org path,
/// $7 subtree, $8 from, $9 until, $10 limit.
macro_rules! audit_select {
    ($tail:literal) => {
        concat!(
            "select a.id, a.at, a.actor, a.action, a.object_type, a.object_id, o.code as org_code,
                    o.name as org_name, a.detail, a.ip, a.seal_no
             from audit_log a left join org o on o.id = a.org_id
             where ($1::bigint is null or a.id < $1) and ($2::bigint is null or a.id > $2)
               and ($3::text is null or a.actor = $3)
               and ($4::text is null or a.action like $4 escape '\\')
               and ($5::bigint is null
                    or (not $7 and a.org_id = $5)
                    or ($7 and o.path >= $6 and o.path < subtree_upper($6)))
               and ($8::timestamptz is null or a.at >= $8)
               and ($9::timestamptz is null or a.at < $9) ",
            $tail
        )
    };
}

/// One page of entries, newest first, by keyset on the id (the primary key): `limit`
/// entries starting at `cursor`, plus whether more lie beyond in that direction.
pub async fn audit_page(
    conn: &mut PgConnection,
    f: &AuditFilter,
    cursor: Cursor,
    limit: i64,
) -> sqlx::Result<(Vec<AuditRow>, bool)> {
    let (before, after) = match cursor {
        Cursor::Newest => (None, None),
        Cursor::Before(id) => (Some(id), None),
        Cursor::After(id) => (None, Some(id)),
    };
    let like = f.action.as_deref().map(|a| format!("{}%", escape_like(a)));
    let (org_id, org_path) = match &f.org {
        Some((id, path)) => (Some(*id), Some(path.clone())),
        None => (None, None),
    };
    let sql = if after.is_some() {
        audit_select!("order by a.id limit $10")
    } else {
        audit_select!("order by a.id desc limit $10")
    };
    let mut rows: Vec<AuditRow> = sqlx::query_as(sql)
        .bind(before)
        .bind(after)
        .bind(f.actor.as_deref())
        .bind(like)
        .bind(org_id)
        .bind(org_path)
        .bind(f.subtree)
        .bind(f.from)
        .bind(f.until)
        .bind(limit + 1)
        .fetch_all(conn)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if after.is_some() {
        rows.reverse();
    }
    Ok((rows, more))
}

/// The state of the hash chain without walking it: how many entries are sealed (the
/// seal head) and how many wait for the next seal (index `audit_log_unsealed`).
pub async fn chain_counts(conn: &mut PgConnection) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select (select seal_no from audit_head),
                (select count(*) from audit_log where seal_no is null)",
    )
    .fetch_one(conn)
    .await
}

/// The object of the entries that record a verification of the chain.
pub const CHAIN_OBJECT: (&str, &str) = ("audit_chain", "chain");

/// The latest verification of the chain recorded in the log (index `audit_log_object`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LastVerification {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub detail: serde_json::Value,
}

pub async fn last_verification(conn: &mut PgConnection) -> sqlx::Result<Option<LastVerification>> {
    sqlx::query_as(
        "select at, actor, detail from audit_log
         where object_type = $1 and object_id = $2 and action = 'audit.verify'
         order by at desc, id desc limit 1",
    )
    .bind(CHAIN_OBJECT.0)
    .bind(CHAIN_OBJECT.1)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_like_characters() {
        assert_eq!(like_patterns("Ab_%"), ("ab\\_\\%%".to_owned(), "%Ab\\_\\%%".to_owned()));
    }

    #[test]
    fn generated_passwords_are_long_distinct_and_pass_the_policy() {
        let a = generate_password();
        assert_eq!(a.chars().count(), 22);
        assert_ne!(a, generate_password());
        assert!(users::check_password(&a).is_ok());
    }

    fn draft() -> SettingsDraft {
        let s = Settings {
            tz: chrono_tz::Asia::Shanghai,
            lead_days: LeadDays::default(),
            attachment_max_bytes: settings::DEFAULT_ATTACHMENT_MAX_BYTES,
            other: Default::default(),
        };
        SettingsDraft::of(&s)
    }

    #[test]
    fn the_stored_settings_as_a_draft_change_nothing() {
        let c = validate_settings(&draft(), chrono_tz::Asia::Shanghai, true).unwrap();
        assert_eq!(c.lead_days, LeadDays::default());
        assert_eq!(c.attachment_max_bytes, settings::DEFAULT_ATTACHMENT_MAX_BYTES);
        assert_eq!((c.mail, c.password), (None, PasswordChange::Keep));
    }

    #[test]
    fn every_wrong_setting_is_named() {
        let mut d = draft();
        d.time_zone = "Asia/Urumqi".into();
        d.lead_month = "29".into();
        d.lead_year = "-1".into();
        d.attachment_max_mb = "1025".into();
        d.mail_host = "smtp.example.gov.cn".into();
        d.mail_port = "0".into();
        d.mail_tls = "ssl3".into();
        let problems = validate_settings(&d, chrono_tz::Asia::Shanghai, true).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["time_zone", "lead_year", "lead_month", "attachment_max_mb", "mail_tls", "mail_port", "mail_from"]
        );
        assert_eq!(problems[0].1, SettingsProblem::TimeZoneLocked);
        assert_eq!(problems[2].1, SettingsProblem::LeadDays(28));
    }

    #[test]
    fn a_mail_server_takes_the_usual_port_of_its_encryption_and_never_shows_its_password() {
        let mut d = draft();
        d.mail_host = "smtp.example.gov.cn".into();
        d.mail_from = "portal@example.gov.cn".into();
        d.mail_tls = "tls".into();
        d.mail_password = "s3cret-pass".into();
        let c = validate_settings(&d, chrono_tz::Asia::Shanghai, false).unwrap();
        assert_eq!(c.mail.as_ref().map(|m| m.port), Some(465));
        assert!(!format!("{c:?}").contains("s3cret-pass"), "not even in a debug line");
        assert!(!valid_email("a@b") && valid_email("a.b@c.gov.cn") && !valid_email("x <a@b.cn>"));
    }

    #[test]
    fn labels_are_one_short_line() {
        assert_eq!(validate_label("  CI 脚本 ").unwrap(), "CI 脚本");
        assert!(validate_label("a\nb").is_err());
        assert!(validate_label(&"x".repeat(101)).is_err());
    }
}

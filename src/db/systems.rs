//! What the rules admin pages and API read about responsibility systems: the systems
//! with their rules in order, one rule with all its versions, its waivers, its duties of a
//! period; and the checking of a rule form at the edge, field by field, so that pages and
//! the API refuse the same things with the same words (`i18n/rules.toml`).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties::StatusCounts;
use super::rules::{NewRule, Rule, RuleVersion, VersionChange};
use crate::domain::access::Role;
use crate::domain::period::{Cadence, MAX_YEAR, MIN_YEAR, Period};
use crate::domain::status::{Settled, status_at};
use crate::domain::templates::{Binds, RECORD_KINDS};
use crate::domain::time::Deadlines;

/// Systems listed on one page (a deployment has a handful).
pub const SYSTEM_LIMIT: i64 = 200;
/// Rules listed over all systems.
pub const RULE_LIMIT: i64 = 2000;
/// Versions of one rule listed.
pub const VERSION_LIMIT: i64 = 200;
/// Waivers of one rule listed.
pub const WAIVER_LIMIT: i64 = 500;
/// Started periods of one rule offered for its duty list.
pub const PERIOD_LIMIT: i64 = 24;
/// A new rule takes effect at most this many years back (each started period gets its
/// duties at once, so keep that bounded, as installing a template does).
pub const MAX_YEARS_BACK: i32 = 10;

// ---------------------------------------------------------------------------------------
// Systems and their rules
// ---------------------------------------------------------------------------------------

/// A responsibility system.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct System {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub template: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn find_system(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<System>> {
    sqlx::query_as("select id, code, title, template, created_at from responsibility_system where code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn system_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<System>> {
    sqlx::query_as("select id, code, title, template, created_at from responsibility_system where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every system, oldest first.
pub async fn list_systems(conn: &mut PgConnection) -> sqlx::Result<Vec<System>> {
    sqlx::query_as("select id, code, title, template, created_at from responsibility_system order by id limit $1")
        .bind(SYSTEM_LIMIT)
        .fetch_all(conn)
        .await
}

/// A rule as the systems list shows it: its identity and the version in force on the
/// day asked (or, before it takes effect, its first version).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleSummary {
    pub rule_id: i64,
    pub system_id: i64,
    pub code: String,
    pub position: i32,
    pub cadence: String,
    pub binds: String,
    pub record_kind: String,
    pub version_from: NaiveDate,
    pub retired: bool,
    pub title: String,
    pub clause: String,
    pub responsible_role: String,
    pub min_count: i32,
    pub grace_days: i32,
    pub lead_days: Option<i32>,
    pub needs_review: bool,
    pub kinds: Vec<String>,
    pub root_code: Option<String>,
    pub root_name: Option<String>,
    /// The first version's date: the rule is in force since then.
    pub first_effective: NaiveDate,
    /// The date of a version still to come, if any.
    pub next_change: Option<NaiveDate>,
    pub versions: i64,
}

impl RuleSummary {
    pub fn cadence(&self) -> Cadence {
        self.cadence.parse().unwrap_or(Cadence::Year)
    }

    /// Whether the rule has not taken effect yet on `day`.
    pub fn pending_on(&self, day: NaiveDate) -> bool {
        self.first_effective > day
    }
}

/// The rules of some systems in their order, each with its version in force on `day`.
pub async fn rules_of_systems(
    conn: &mut PgConnection,
    system_ids: &[i64],
    day: NaiveDate,
) -> sqlx::Result<Vec<RuleSummary>> {
    sqlx::query_as(
        "select r.id as rule_id, r.system_id, r.code, r.position, r.cadence, r.binds, r.record_kind,
                v.effective_from as version_from, v.retired, v.title, v.clause, v.responsible_role, v.min_count,
                v.grace_days, v.lead_days, v.needs_review,
                array(select kind from rule_version_kind k where k.version_id = v.id order by kind) as kinds,
                ro.code as root_code, ro.name as root_name,
                (select min(f.effective_from) from rule_version f where f.rule_id = r.id) as first_effective,
                (select min(f.effective_from) from rule_version f where f.rule_id = r.id and f.effective_from > $2)
                    as next_change,
                (select count(*) from rule_version f where f.rule_id = r.id) as versions
         from rule r
         cross join lateral (
             select * from rule_version v where v.rule_id = r.id
             order by (v.effective_from <= $2) desc,
                      case when v.effective_from <= $2 then v.effective_from end desc,
                      v.effective_from asc
             limit 1) v
         left join org ro on ro.id = v.root_org_id
         where r.system_id = any($1)
         order by r.system_id, r.position
         limit $3",
    )
    .bind(system_ids)
    .bind(day)
    .bind(RULE_LIMIT)
    .fetch_all(conn)
    .await
}

/// How many duties each rule has in one period (its current one), waived and cancelled
/// ones left out, read from the per-subtree totals of the roots rather than from duties.
pub async fn owing_counts(
    conn: &mut PgConnection,
    periods: &[(i64, String)],
) -> sqlx::Result<std::collections::HashMap<i64, i64>> {
    let rule_ids: Vec<i64> = periods.iter().map(|(id, _)| *id).collect();
    let keys: Vec<String> = periods.iter().map(|(_, k)| k.clone()).collect();
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "select t.rule_id, sum(t.n)::bigint
         from subtree_total t
         join unnest($1::bigint[], $2::text[]) as q(rule_id, period_key)
           on t.rule_id = q.rule_id and t.period_key = q.period_key
         where t.org_id = any(array(select id from org where parent_id is null))
           and t.class not in ('waived', 'cancelled')
         group by t.rule_id",
    )
    .bind(&rule_ids)
    .bind(&keys)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The codes of the templates installed already.
pub async fn installed_templates(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select template from responsibility_system where template is not null order by id limit $1")
        .bind(SYSTEM_LIMIT)
        .fetch_all(conn)
        .await
}

/// The rule codes among `codes` that exist.
pub async fn taken_codes(conn: &mut PgConnection, codes: &[&str]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select code from rule where code = any($1) order by code").bind(codes).fetch_all(conn).await
}

// ---------------------------------------------------------------------------------------
// One rule
// ---------------------------------------------------------------------------------------

/// One version of a rule, as its history shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionView {
    pub id: i64,
    pub effective_from: NaiveDate,
    pub retired: bool,
    pub title: String,
    pub clause: String,
    pub clause_text: String,
    pub kinds: Vec<String>,
    pub root: Option<String>,
    pub root_name: Option<String>,
    pub responsible_role: String,
    pub min_count: i32,
    pub grace_days: i32,
    pub lead_days: Option<i32>,
    pub needs_review: bool,
    pub created_at: DateTime<Utc>,
    /// The login of the admin who made it (none for a template installed from the command line).
    pub created_by: Option<String>,
    pub created_by_name: Option<String>,
}

/// Every version of a rule, by the date it takes effect.
pub async fn versions(conn: &mut PgConnection, rule_id: i64) -> sqlx::Result<Vec<VersionView>> {
    sqlx::query_as(
        "select v.id, v.effective_from, v.retired, v.title, v.clause, v.clause_text,
                array(select kind from rule_version_kind k where k.version_id = v.id order by kind) as kinds,
                ro.code as root, ro.name as root_name, v.responsible_role, v.min_count, v.grace_days, v.lead_days,
                v.needs_review, v.created_at, u.login as created_by, p.name as created_by_name
         from rule_version v
         left join org ro on ro.id = v.root_org_id
         left join app_user u on u.id = v.created_by
         left join person p on p.id = u.person_id
         where v.rule_id = $1
         order by v.effective_from
         limit $2",
    )
    .bind(rule_id)
    .bind(VERSION_LIMIT)
    .fetch_all(conn)
    .await
}

/// The index in `versions` (ordered by date) of the one in force on `day`; before the
/// first takes effect, the first.
pub fn in_force_index(versions: &[VersionView], day: NaiveDate) -> Option<usize> {
    if versions.is_empty() {
        return None;
    }
    Some(versions.iter().rposition(|v| v.effective_from <= day).unwrap_or(0))
}

/// The latest version of a rule (the one a new version builds on).
pub async fn latest_version(conn: &mut PgConnection, rule_id: i64) -> sqlx::Result<Option<RuleVersion>> {
    sqlx::query_as(
        "select v.id, v.rule_id, v.effective_from, v.retired, v.title, v.clause, v.root_org_id, v.responsible_role,
                v.min_count, v.grace_days, v.lead_days, v.needs_review,
                array(select kind from rule_version_kind k where k.version_id = v.id order by kind) as kinds
         from rule_version v where v.rule_id = $1 order by v.effective_from desc limit 1",
    )
    .bind(rule_id)
    .fetch_optional(conn)
    .await
}

/// The clause text of one version.
pub async fn clause_text(conn: &mut PgConnection, version_id: i64) -> sqlx::Result<String> {
    sqlx::query_scalar("select clause_text from rule_version where id = $1")
        .bind(version_id)
        .fetch_optional(conn)
        .await
        .map(Option::unwrap_or_default)
}

/// A rule waived for one organisation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaiverView {
    pub org: String,
    pub org_name: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

/// The organisations a rule is waived for, newest first.
pub async fn waivers(conn: &mut PgConnection, rule_id: i64) -> sqlx::Result<Vec<WaiverView>> {
    sqlx::query_as(
        "select o.code as org, o.name as org_name, w.reason, w.created_at, u.login as created_by
         from rule_waiver w join org o on o.id = w.org_id left join app_user u on u.id = w.created_by
         where w.rule_id = $1
         order by w.created_at desc, w.id desc
         limit $2",
    )
    .bind(rule_id)
    .bind(WAIVER_LIMIT)
    .fetch_all(conn)
    .await
}

/// The periods of a rule that have started (their duties exist), newest first.
pub async fn started_periods(conn: &mut PgConnection, rule_id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select period_key from rule_period where rule_id = $1 and materialized_at is not null
         order by period_start desc limit $2",
    )
    .bind(rule_id)
    .bind(PERIOD_LIMIT)
    .fetch_all(conn)
    .await
}

/// A rule's duties of one period by status, over the whole tree, from the roots' totals.
pub async fn period_counts(
    conn: &mut PgConnection,
    rule_id: i64,
    period_key: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<StatusCounts> {
    let rows: Vec<(String, i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "select t.class, sum(t.n)::bigint, rp.due_at, rp.due_soon_at
         from subtree_total t
         join rule_period rp on rp.rule_id = t.rule_id and rp.period_key = t.period_key
         where t.org_id = any(array(select id from org where parent_id is null))
           and t.rule_id = $1 and t.period_key = $2
         group by t.class, rp.due_at, rp.due_soon_at",
    )
    .bind(rule_id)
    .bind(period_key)
    .fetch_all(conn)
    .await?;
    let mut counts = StatusCounts::default();
    for (class, n, due_at, due_soon_at) in rows {
        let settled: Settled = class.parse().unwrap_or(Settled::Pending);
        counts.add(status_at(settled, Deadlines { due_at, due_soon_at }, now), n);
    }
    Ok(counts)
}

/// One duty of a rule, as the rule's duty list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleDuty {
    pub id: i64,
    pub org_code: String,
    pub org_name: String,
    pub person_name: Option<String>,
    pub period_key: String,
    pub required: i32,
    pub accepted: i32,
    pub pending: i32,
    pub class: String,
    pub due_at: DateTime<Utc>,
    pub due_soon_at: DateTime<Utc>,
    pub waived_reason: Option<String>,
    pub rule_code: String,
    pub rule_title: String,
    pub org_id: i64,
}

impl RuleDuty {
    pub fn status(&self, now: DateTime<Utc>) -> crate::domain::status::Status {
        let settled: Settled = self.class.parse().unwrap_or(Settled::Pending);
        status_at(settled, Deadlines { due_at: self.due_at, due_soon_at: self.due_soon_at }, now)
    }
}

/// The rule duty query with a fixed clause appended (the SQL stays a literal).
macro_rules! select_rule_duty {
    ($clause:literal) => {
        concat!(
            "select d.id, o.code as org_code, o.name as org_name, p.name as person_name, d.period_key, d.required,
                    d.accepted, d.pending, d.class, d.due_at, rp.due_soon_at, d.waived_reason,
                    r.code as rule_code, v.title as rule_title, d.org_id
             from duty d
             join org o on o.id = d.org_id
             join rule r on r.id = d.rule_id
             join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
             join rule_version v on v.id = rp.version_id
             left join person p on p.id = d.person_id ",
            $clause
        )
    };
}

/// A page of a rule's duties of one period, in the order they were created, after the
/// duty `after` (keyset paging on the rule-period index).
pub async fn rule_duties(
    conn: &mut PgConnection,
    rule_id: i64,
    period_key: &str,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<RuleDuty>> {
    sqlx::query_as(select_rule_duty!("where d.rule_id = $1 and d.period_key = $2 and d.id > $3 order by d.id limit $4"))
        .bind(rule_id)
        .bind(period_key)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// One duty, for the waiver form.
pub async fn find_duty(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<RuleDuty>> {
    sqlx::query_as(select_rule_duty!("where d.id = $1")).bind(id).fetch_optional(conn).await
}

/// Whether any version of a rule applies to organisations of `kind` (a waiver for an
/// organisation the rule never binds would mean nothing).
pub async fn ever_applies_to_kind(conn: &mut PgConnection, rule_id: i64, kind: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from rule_version v join rule_version_kind k on k.version_id = v.id
                        where v.rule_id = $1 and k.kind = $2)",
    )
    .bind(rule_id)
    .bind(kind)
    .fetch_one(conn)
    .await
}

/// What a new rule creates, found by creating it inside a transaction the caller rolls
/// back (a preview) or commits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewRuleImpact {
    /// The started periods that get duties now, oldest first.
    pub periods: Vec<String>,
    pub duties_created: i64,
    /// Organisations owing the rule in its current period.
    pub orgs_owing: i64,
}

/// The periods and the organisations owing a just-created rule (in the caller's transaction).
pub async fn new_rule_impact(
    conn: &mut PgConnection,
    rule_id: i64,
    current_period: &str,
    duties_created: u64,
) -> sqlx::Result<NewRuleImpact> {
    let periods: Vec<String> = sqlx::query_scalar(
        "select period_key from rule_period where rule_id = $1 and materialized_at is not null order by period_start",
    )
    .bind(rule_id)
    .fetch_all(&mut *conn)
    .await?;
    let orgs_owing: i64 =
        sqlx::query_scalar("select count(distinct org_id) from duty where rule_id = $1 and period_key = $2")
            .bind(rule_id)
            .bind(current_period)
            .fetch_one(&mut *conn)
            .await?;
    Ok(NewRuleImpact { periods, duties_created: duties_created as i64, orgs_owing })
}

/// An organisation kind, with its names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Kind {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

pub async fn org_kinds(conn: &mut PgConnection) -> sqlx::Result<Vec<Kind>> {
    sqlx::query_as("select code, name_zh, name_en from org_kind order by position, code limit 200")
        .fetch_all(conn)
        .await
}

// ---------------------------------------------------------------------------------------
// Checking a rule form at the edge
// ---------------------------------------------------------------------------------------

/// What an admin typed into a rule form (or sent to the API), as text, kept as typed so
/// that a form with a mistake comes back unchanged.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub code: String,
    pub title: String,
    pub clause: String,
    pub clause_text: String,
    pub kinds: Vec<String>,
    pub cadence: String,
    pub binds: String,
    pub record_kind: String,
    pub responsible_role: String,
    pub min_count: String,
    pub grace_days: String,
    pub lead_days: String,
    pub needs_review: bool,
    pub effective_from: String,
    pub root: String,
    pub retired: bool,
}

impl RuleInput {
    /// A version's fields as a form shows them, taking effect on `effective_from`.
    pub fn from_version(
        v: &RuleVersion,
        clause_text: &str,
        root: Option<&str>,
        effective_from: NaiveDate,
    ) -> RuleInput {
        RuleInput {
            title: v.title.clone(),
            clause: v.clause.clone(),
            clause_text: clause_text.to_owned(),
            kinds: v.kinds.clone(),
            responsible_role: v.responsible_role.clone(),
            min_count: v.min_count.to_string(),
            grace_days: v.grace_days.to_string(),
            lead_days: v.lead_days.map(|d| d.to_string()).unwrap_or_default(),
            needs_review: v.needs_review,
            effective_from: effective_from.to_string(),
            root: root.unwrap_or_default().to_owned(),
            retired: v.retired,
            ..RuleInput::default()
        }
    }

    /// Set one form field by name; unknown names are ignored.
    pub fn set(&mut self, name: &str, value: String) {
        match name {
            "code" => self.code = value,
            "title" => self.title = value,
            "clause" => self.clause = value,
            "clause_text" => self.clause_text = value,
            "kinds" if self.kinds.len() < 50 => self.kinds.push(value),
            "cadence" => self.cadence = value,
            "binds" => self.binds = value,
            "record_kind" => self.record_kind = value,
            "responsible_role" => self.responsible_role = value,
            "min_count" => self.min_count = value,
            "grace_days" => self.grace_days = value,
            "lead_days" => self.lead_days = value,
            "needs_review" => self.needs_review = matches!(value.as_str(), "1" | "true" | "on" | "yes"),
            "effective_from" => self.effective_from = value,
            "root" => self.root = value,
            "retired" => self.retired = matches!(value.as_str(), "1" | "true" | "on" | "yes"),
            _ => {}
        }
    }

    pub fn has_kind(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

/// A problem with one field: the field, the message's key in `i18n/rules.toml`, and what
/// fills its `{0}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub key: &'static str,
    pub arg: String,
}

/// The problems of one form, at most one per field (the first found).
#[derive(Debug, Clone, Default)]
pub struct Problems(pub Vec<FieldProblem>);

impl Problems {
    pub fn add(&mut self, field: &'static str, key: &'static str, arg: impl Into<String>) {
        if !self.has(field) {
            self.0.push(FieldProblem { field, key, arg: arg.into() });
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|p| p.field == field)
    }

    pub fn get(&self, field: &str) -> Option<&FieldProblem> {
        self.0.iter().find(|p| p.field == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A rule's code: 1–32 letters, digits, '.', '_' or '-', starting with a letter or digit.
pub fn valid_rule_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A system's code: 1–64 lowercase letters, digits or '-', starting with a letter or digit.
pub fn valid_system_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A day written YYYY-MM-DD (also 2026/3/1), in the years periods cover.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(s, "%Y/%m/%d")).ok()?;
    (MIN_YEAR..=MAX_YEAR).contains(&d.year()).then_some(d)
}

/// Text of at most `max` characters, trimmed; `min` 1 makes it required.
fn check_text(problems: &mut Problems, field: &'static str, value: &str, min: usize, max: usize) -> String {
    let v = value.trim();
    let n = v.chars().count();
    if v.contains('\0') {
        problems.add(field, "err_text_bad", "");
    } else if n < min {
        problems.add(field, "err_required", "");
    } else if n > max {
        problems.add(field, "err_too_long", max.to_string());
    }
    v.to_owned()
}

fn check_number(problems: &mut Problems, field: &'static str, value: &str, min: i32, max: i32) -> i32 {
    let v = value.trim();
    if v.is_empty() {
        problems.add(field, "err_required", "");
        return min;
    }
    match v.parse::<i32>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            let key = if min == 1 { "err_count" } else { "err_days" };
            problems.add(field, key, max.to_string());
            min
        }
    }
}

/// A system's code and title.
pub async fn check_system(
    conn: &mut PgConnection,
    code: &str,
    title: &str,
) -> sqlx::Result<Result<(String, String), Problems>> {
    let mut problems = Problems::default();
    let code = code.trim().to_owned();
    if !valid_system_code(&code) {
        problems.add("code", "err_system_code", "");
    } else if find_system(conn, &code).await?.is_some() {
        problems.add("code", "err_system_taken", code.clone());
    }
    let title = check_text(&mut problems, "title", title, 1, 200);
    Ok(if problems.is_empty() { Ok((code, title)) } else { Err(problems) })
}

/// The fields every version has, checked.
struct VersionFields {
    title: String,
    clause: String,
    clause_text: String,
    kinds: Vec<String>,
    root_org_id: Option<i64>,
    responsible_role: String,
    min_count: i32,
    grace_days: i32,
    lead_days: Option<i32>,
    needs_review: bool,
}

async fn check_version_fields(
    conn: &mut PgConnection,
    input: &RuleInput,
    problems: &mut Problems,
) -> sqlx::Result<VersionFields> {
    let title = check_text(problems, "title", &input.title, 1, 200);
    let clause = check_text(problems, "clause", &input.clause, 0, 100);
    let clause_text = check_text(problems, "clause_text", &input.clause_text, 0, 5000);
    let mut kinds: Vec<String> = input.kinds.iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        problems.add("kinds", "err_kinds_none", "");
    } else {
        let known: Vec<String> = sqlx::query_scalar("select code from org_kind where code = any($1)")
            .bind(&kinds)
            .fetch_all(&mut *conn)
            .await?;
        if let Some(unknown) = kinds.iter().find(|k| !known.contains(k)) {
            problems.add("kinds", "err_kind_unknown", unknown.clone());
        }
    }
    let root = input.root.trim();
    let root_org_id = if root.is_empty() {
        None
    } else if root.contains('\0') || root.len() > 64 {
        problems.add("root", "err_root_unknown", "");
        None
    } else {
        match super::orgs::find_by_code(conn, root).await? {
            Some(org) => Some(org.id),
            None => {
                problems.add("root", "err_root_unknown", root.to_owned());
                None
            }
        }
    };
    let role = input.responsible_role.trim();
    if role.parse::<Role>().is_err() {
        problems.add("responsible_role", "err_role", "");
    }
    let min_count = check_number(problems, "min_count", &input.min_count, 1, 366);
    let grace_days = if input.grace_days.trim().is_empty() {
        0
    } else {
        check_number(problems, "grace_days", &input.grace_days, 0, 366)
    };
    let lead_days = if input.lead_days.trim().is_empty() {
        None
    } else {
        Some(check_number(problems, "lead_days", &input.lead_days, 0, 366))
    };
    Ok(VersionFields {
        title,
        clause,
        clause_text,
        kinds,
        root_org_id,
        responsible_role: role.to_owned(),
        min_count,
        grace_days,
        lead_days,
        needs_review: input.needs_review,
    })
}

/// The first day a change of a rule of `cadence` may take effect on `today`: the start of
/// the current period (the periods before it keep the rule as it was).
pub fn earliest_change(cadence: Cadence, today: NaiveDate) -> NaiveDate {
    Period::containing(cadence, today).first_day()
}

/// The day a change takes effect unless the admin says otherwise: the next period's start.
pub fn default_change_day(cadence: Cadence, today: NaiveDate) -> NaiveDate {
    Period::containing(cadence, today).next().first_day()
}

/// A new version of `rule`, checked; `latest` is the version it builds on (for a retirement
/// every field but the date is taken from it).
pub async fn check_change(
    conn: &mut PgConnection,
    rule: &Rule,
    input: &RuleInput,
    today: NaiveDate,
) -> sqlx::Result<Result<VersionChange, Problems>> {
    let mut problems = Problems::default();
    let fields = check_version_fields(conn, input, &mut problems).await?;
    let earliest = earliest_change(rule.cadence(), today);
    let effective_from = match parse_day(&input.effective_from) {
        None if input.effective_from.trim().is_empty() => {
            problems.add("effective_from", "err_required", "");
            earliest
        }
        None => {
            problems.add("effective_from", "err_date", "");
            earliest
        }
        Some(d) if d < earliest => {
            problems.add("effective_from", "err_before_current", earliest.to_string());
            d
        }
        Some(d) => {
            let taken: bool = sqlx::query_scalar(
                "select exists (select 1 from rule_version where rule_id = $1 and effective_from = $2)",
            )
            .bind(rule.id)
            .bind(d)
            .fetch_one(&mut *conn)
            .await?;
            if taken {
                problems.add("effective_from", "err_version_taken", d.to_string());
            }
            d
        }
    };
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(VersionChange {
        effective_from,
        retired: input.retired,
        title: fields.title,
        clause: fields.clause,
        clause_text: fields.clause_text,
        kinds: fields.kinds,
        root_org_id: fields.root_org_id,
        responsible_role: fields.responsible_role,
        min_count: fields.min_count,
        grace_days: fields.grace_days,
        lead_days: fields.lead_days,
        needs_review: fields.needs_review,
    }))
}

/// A new rule, checked: every field of its identity and its first version.
pub async fn check_new_rule(
    conn: &mut PgConnection,
    input: &RuleInput,
    today: NaiveDate,
) -> sqlx::Result<Result<NewRule, Problems>> {
    let mut problems = Problems::default();
    let code = input.code.trim().to_owned();
    if !valid_rule_code(&code) {
        problems.add("code", "err_rule_code", "");
    } else if super::rules::find_by_code(conn, &code).await?.is_some() {
        problems.add("code", "err_rule_taken", code.clone());
    }
    let cadence = match input.cadence.trim().parse::<Cadence>() {
        Ok(c) => c,
        Err(_) => {
            problems.add("cadence", "err_cadence", "");
            Cadence::Year
        }
    };
    let binds = match input.binds.trim() {
        "" | "organisation" => Binds::Organisation,
        "each_member" => Binds::EachMember,
        _ => {
            problems.add("binds", "err_binds", "");
            Binds::Organisation
        }
    };
    let record_kind = input.record_kind.trim().to_owned();
    if !RECORD_KINDS.contains(&record_kind.as_str()) {
        problems.add("record_kind", "err_record_kind", "");
    }
    let fields = check_version_fields(conn, input, &mut problems).await?;
    let earliest = NaiveDate::from_ymd_opt(today.year() - MAX_YEARS_BACK, 1, 1).unwrap_or(today);
    let effective_from = match parse_day(&input.effective_from) {
        None if input.effective_from.trim().is_empty() => {
            problems.add("effective_from", "err_required", "");
            today
        }
        None => {
            problems.add("effective_from", "err_date", "");
            today
        }
        Some(d) if d < earliest => {
            problems.add("effective_from", "err_too_far_back", MAX_YEARS_BACK.to_string());
            d
        }
        Some(d) => d,
    };
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(NewRule {
        code,
        title: fields.title,
        clause: fields.clause,
        clause_text: fields.clause_text,
        kinds: fields.kinds,
        cadence,
        binds,
        record_kind,
        responsible_role: fields.responsible_role,
        min_count: fields.min_count,
        grace_days: fields.grace_days,
        lead_days: fields.lead_days,
        needs_review: fields.needs_review,
        effective_from,
        root_org_id: fields.root_org_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_and_system_codes_follow_the_schema() {
        assert!(valid_rule_code("A7"));
        assert!(valid_rule_code("X-1.b_2"));
        assert!(!valid_rule_code(""));
        assert!(!valid_rule_code("-A"));
        assert!(!valid_rule_code("A 7"));
        assert!(!valid_rule_code(&"A".repeat(33)));
        assert!(valid_system_code("ideology-2026"));
        assert!(!valid_system_code("Ideology"));
        assert!(!valid_system_code("a_b"));
    }

    #[test]
    fn days_are_read_with_dashes_or_slashes_in_the_years_periods_cover() {
        assert_eq!(parse_day("2026-4-1"), NaiveDate::from_ymd_opt(2026, 4, 1));
        assert_eq!(parse_day(" 2026/04/01 "), NaiveDate::from_ymd_opt(2026, 4, 1));
        assert_eq!(parse_day("1899-12-31"), None);
        assert_eq!(parse_day("2026-02-30"), None);
    }

    #[test]
    fn a_change_may_start_with_the_current_period_and_defaults_to_the_next() {
        let may_10 = NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
        assert_eq!(earliest_change(Cadence::Quarter, may_10), NaiveDate::from_ymd_opt(2026, 4, 1).unwrap());
        assert_eq!(default_change_day(Cadence::Quarter, may_10), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(default_change_day(Cadence::Year, may_10), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
    }
}

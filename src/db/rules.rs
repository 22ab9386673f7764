//! Responsibility systems, their rules and the rules' versions; installing the built-in
//! templates.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties::{self, Materialized};
use super::orgs::Org;
use super::settings::Settings;
use crate::domain::period::Cadence;
use crate::domain::templates::{Binds, RuleSpec, Template};
use crate::error::{AppError, AppResult};

/// A rule's identity: what never changes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rule {
    pub id: i64,
    pub code: String,
    pub system_id: i64,
    pub cadence: String,
    pub binds: String,
    pub record_kind: String,
}

impl Rule {
    pub fn cadence(&self) -> Cadence {
        self.cadence.parse().unwrap_or(Cadence::Year)
    }

    pub fn binds_each_member(&self) -> bool {
        self.binds == "each_member"
    }
}

/// One version of a rule: what it says from `effective_from` on.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleVersion {
    pub id: i64,
    pub rule_id: i64,
    pub effective_from: NaiveDate,
    pub retired: bool,
    pub title: String,
    pub clause: String,
    pub root_org_id: Option<i64>,
    pub responsible_role: String,
    pub min_count: i32,
    pub grace_days: i32,
    pub lead_days: Option<i32>,
    pub needs_review: bool,
    pub kinds: Vec<String>,
}

pub async fn find_by_code(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Rule>> {
    sqlx::query_as("select id, code, system_id, cadence, binds, record_kind from rule where code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// The version in force on `day`; when none has taken effect yet, the first version.
pub async fn version_on(conn: &mut PgConnection, rule_id: i64, day: NaiveDate) -> sqlx::Result<Option<RuleVersion>> {
    sqlx::query_as(
        "select v.id, v.rule_id, v.effective_from, v.retired, v.title, v.clause, v.root_org_id, v.responsible_role,
                v.min_count, v.grace_days, v.lead_days, v.needs_review,
                array(select kind from rule_version_kind k where k.version_id = v.id order by kind) as kinds
         from rule_version v where v.rule_id = $1
         order by (v.effective_from <= $2) desc,
                  case when v.effective_from <= $2 then v.effective_from end desc,
                  v.effective_from asc
         limit 1",
    )
    .bind(rule_id)
    .bind(day)
    .fetch_optional(conn)
    .await
}

/// Whether a rule, as in force on `day`, applies to the organisation: its kind and its
/// place in the tree.
pub fn binds(version: &RuleVersion, org: &Org) -> bool {
    !version.retired
        && version.kinds.contains(&org.kind)
        && version.root_org_id.is_none_or(|root| org.path.contains(&root))
}

/// The record of an installation.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub template: String,
    pub system: String,
    pub rules: Vec<String>,
    pub effective_from: NaiveDate,
    pub root: Option<String>,
    pub duties_created: u64,
}

/// A new rule with its first version, validated at the edge.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub code: String,
    pub title: String,
    pub clause: String,
    pub clause_text: String,
    pub kinds: Vec<String>,
    pub cadence: Cadence,
    pub binds: Binds,
    pub record_kind: String,
    pub responsible_role: String,
    pub min_count: i32,
    pub grace_days: i32,
    pub lead_days: Option<i32>,
    pub needs_review: bool,
    pub effective_from: NaiveDate,
    pub root_org_id: Option<i64>,
}

impl NewRule {
    /// The rule a template specifies, taking effect on `effective_from` under `root`.
    pub fn from_spec(spec: &RuleSpec, effective_from: NaiveDate, root_org_id: Option<i64>) -> NewRule {
        NewRule {
            code: spec.code.to_owned(),
            title: spec.title.to_owned(),
            clause: spec.clause.to_owned(),
            clause_text: String::new(),
            kinds: spec.kinds.iter().map(|k| k.to_string()).collect(),
            cadence: spec.cadence,
            binds: spec.binds,
            record_kind: spec.record_kind.to_owned(),
            responsible_role: spec.responsible_role.to_owned(),
            min_count: spec.min_count as i32,
            grace_days: 0,
            lead_days: None,
            needs_review: spec.needs_review,
            effective_from,
            root_org_id,
        }
    }
}

/// Create a responsibility system; 409 when its code exists.
pub async fn create_system(
    conn: &mut PgConnection,
    code: &str,
    title: &str,
    template: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<i64> {
    let taken: bool = sqlx::query_scalar("select exists (select 1 from responsibility_system where code = $1)")
        .bind(code)
        .fetch_one(&mut *conn)
        .await?;
    if taken {
        return Err(AppError::conflict(format!("a responsibility system with the code {code:?} exists")));
    }
    Ok(sqlx::query_scalar(
        "insert into responsibility_system (code, title, template, created_at) values ($1, $2, $3, $4) returning id",
    )
    .bind(code)
    .bind(title)
    .bind(template)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Add a rule (and its first version) at the end of a system. Its duties are not created
/// here: the caller materializes them (inside its transaction) once all rules are in.
pub async fn create_rule(
    conn: &mut PgConnection,
    system_id: i64,
    rule: &NewRule,
    actor: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<i64> {
    if find_by_code(conn, &rule.code).await?.is_some() {
        return Err(AppError::conflict(format!("a rule with the code {:?} exists", rule.code)));
    }
    let rule_id: i64 = sqlx::query_scalar(
        "insert into rule (system_id, code, position, cadence, binds, record_kind, created_at)
         values ($1, $2, (select coalesce(max(position), 0) + 1 from rule where system_id = $1), $3, $4, $5, $6)
         returning id",
    )
    .bind(system_id)
    .bind(&rule.code)
    .bind(rule.cadence.as_str())
    .bind(rule.binds.as_str())
    .bind(&rule.record_kind)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let version_id: i64 = sqlx::query_scalar(
        "insert into rule_version (rule_id, effective_from, title, clause, clause_text, root_org_id, responsible_role,
                                   min_count, grace_days, lead_days, needs_review, created_at, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) returning id",
    )
    .bind(rule_id)
    .bind(rule.effective_from)
    .bind(&rule.title)
    .bind(&rule.clause)
    .bind(&rule.clause_text)
    .bind(rule.root_org_id)
    .bind(&rule.responsible_role)
    .bind(rule.min_count)
    .bind(rule.grace_days)
    .bind(rule.lead_days)
    .bind(rule.needs_review)
    .bind(now)
    .bind(actor)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("insert into rule_version_kind (version_id, kind) select $1, unnest($2::text[])")
        .bind(version_id)
        .bind(&rule.kinds)
        .execute(&mut *conn)
        .await?;
    Ok(rule_id)
}

/// Install a built-in template as a responsibility system: its rules take effect on
/// `effective_from` for the subtree of `root` (or the whole tree), and every duty of a
/// period already started is created at once. 409 when any of its codes exists.
pub async fn install_template(
    conn: &mut PgConnection,
    settings: &Settings,
    template: &Template,
    effective_from: NaiveDate,
    root: Option<&Org>,
    actor: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<Installed> {
    let codes: Vec<&str> = template.rules.iter().map(|r| r.code).collect();
    let taken: Vec<String> = sqlx::query_scalar("select code from rule where code = any($1) order by code")
        .bind(&codes)
        .fetch_all(&mut *conn)
        .await?;
    if !taken.is_empty() {
        return Err(AppError::conflict(format!(
            "template {} is installed already (rules {} exist)",
            template.code,
            taken.join(", ")
        )));
    }
    let system_id = create_system(conn, template.code, template.title, Some(template.code), now).await?;
    let mut rule_ids = Vec::with_capacity(template.rules.len());
    for spec in template.rules {
        let rule = NewRule::from_spec(spec, effective_from, root.map(|r| r.id));
        rule_ids.push(create_rule(conn, system_id, &rule, actor, now).await?);
    }
    let Materialized { duties, .. } = duties::materialize_rules(conn, settings, &rule_ids, now).await?;
    Ok(Installed {
        template: template.code.to_owned(),
        system: template.title.to_owned(),
        rules: codes.iter().map(|c| c.to_string()).collect(),
        effective_from,
        root: root.map(|r| r.code.clone()),
        duties_created: duties,
    })
}

/// A new version of a rule, validated at the edge: everything but the rule's identity.
#[derive(Debug, Clone)]
pub struct VersionChange {
    pub effective_from: NaiveDate,
    pub retired: bool,
    pub title: String,
    pub clause: String,
    pub clause_text: String,
    pub kinds: Vec<String>,
    pub root_org_id: Option<i64>,
    pub responsible_role: String,
    pub min_count: i32,
    pub grace_days: i32,
    pub lead_days: Option<i32>,
    pub needs_review: bool,
}

impl VersionChange {
    /// What the audit log records of this change, with what it did: the action and details.
    pub fn audit(&self, impact: &VersionImpact) -> (&'static str, serde_json::Value) {
        let action = if self.retired { "rule.retire" } else { "rule.change" };
        let detail = serde_json::json!({
            "effective_from": self.effective_from,
            "retired": self.retired,
            "title": self.title,
            "min_count": self.min_count,
            "kinds": self.kinds,
            "impact": impact,
        });
        (action, detail)
    }
}

/// What a rule change did to periods that have started (or, in a preview, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionImpact {
    /// Started periods now judged by the new version.
    pub periods: Vec<String>,
    pub duties_created: i64,
    pub duties_removed: i64,
    /// Duties kept whose count or deadline changed.
    pub duties_updated: i64,
    /// Organisations owing the rule in the current period, before and after.
    pub orgs_before: i64,
    pub orgs_after: i64,
}

/// Change a rule from `effective_from` on. The past is never rewritten: the date may not
/// come before the start of the rule's current period, periods that started earlier keep
/// the version they were judged by, and the current period (if it starts on or after the
/// date) is brought in line at once: duties newly owed are created, those no longer
/// owed and without records are removed, the rest get the new count and deadline.
pub async fn change_rule(
    conn: &mut PgConnection,
    settings: &Settings,
    rule: &Rule,
    change: &VersionChange,
    actor: Option<i64>,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> AppResult<VersionImpact> {
    let cadence = rule.cadence();
    let current = crate::domain::period::Period::containing(cadence, today);
    if change.effective_from < current.first_day() {
        return Err(AppError::bad_input(
            "effective_from",
            "past periods keep the rule as it was: choose a date no earlier than the start of the current period",
        ));
    }
    if change.kinds.is_empty() {
        return Err(AppError::bad_input("kinds", "choose at least one kind of organisation"));
    }
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from rule_version where rule_id = $1 and effective_from = $2)")
            .bind(rule.id)
            .bind(change.effective_from)
            .fetch_one(&mut *conn)
            .await?;
    if exists {
        return Err(AppError::conflict("a version taking effect on that date exists; choose another date"));
    }
    sqlx::query("select pg_advisory_xact_lock($1)").bind(super::locks::LIABILITY).execute(&mut *conn).await?;
    let version_id: i64 = sqlx::query_scalar(
        "insert into rule_version (rule_id, effective_from, retired, title, clause, clause_text, root_org_id, responsible_role,
                                   min_count, grace_days, lead_days, needs_review, created_at, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) returning id",
    )
    .bind(rule.id)
    .bind(change.effective_from)
    .bind(change.retired)
    .bind(&change.title)
    .bind(&change.clause)
    .bind(&change.clause_text)
    .bind(change.root_org_id)
    .bind(&change.responsible_role)
    .bind(change.min_count)
    .bind(change.grace_days)
    .bind(change.lead_days)
    .bind(change.needs_review)
    .bind(now)
    .bind(actor)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("insert into rule_version_kind (version_id, kind) select $1, unnest($2::text[])")
        .bind(version_id)
        .bind(&change.kinds)
        .execute(&mut *conn)
        .await?;

    let key = current.to_string();
    let mut impact = VersionImpact { orgs_before: orgs_owing(conn, rule.id, &key).await?, ..Default::default() };
    // The started periods the new version now judges: at most the current one.
    let affected: Vec<(String, NaiveDate)> = sqlx::query_as(
        "select period_key, period_start from rule_period
         where rule_id = $1 and period_start >= $2 and materialized_at is not null order by period_start",
    )
    .bind(rule.id)
    .bind(change.effective_from)
    .fetch_all(&mut *conn)
    .await?;
    for (period_key, _) in affected {
        let period: crate::domain::period::Period =
            period_key.parse().map_err(|_| anyhow::anyhow!("stored period key {period_key} is malformed"))?;
        let lead = change.lead_days.map_or(settings.lead_days.of(cadence), |d| d.max(0) as u32);
        let dl = crate::domain::time::deadlines(settings.tz, period, change.grace_days.max(0) as u32, lead);
        sqlx::query(
            "update rule_period set version_id = $3, required = $4, due_at = $5, due_soon_at = $6,
                    due_soon_swept_at = case when $6 > $7 then null else due_soon_swept_at end,
                    overdue_swept_at = case when $5 > $7 then null else overdue_swept_at end
             where rule_id = $1 and period_key = $2",
        )
        .bind(rule.id)
        .bind(&period_key)
        .bind(version_id)
        .bind(change.min_count)
        .bind(dl.due_at)
        .bind(dl.due_soon_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let removed = sqlx::query(
            "delete from duty d
             where d.rule_id = $1 and d.period_key = $2 and d.accepted = 0 and d.pending = 0 and d.waived_at is null
               and not exists (select 1 from owed_duty od where od.rule_id = d.rule_id and od.period_key = d.period_key
                               and od.org_id = d.org_id and od.person_id is not distinct from d.person_id)
               and not exists (select 1 from record r where r.org_id = d.org_id and r.rule_id = d.rule_id
                               and r.period_key = d.period_key and r.person_id is not distinct from d.person_id)
               and not exists (select 1 from notification_event e where e.duty_id = d.id)",
        )
        .bind(rule.id)
        .bind(&period_key)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        // Kept duties take the new count and deadline, recounted in the same statement so
        // that `nth_accepted_at` always matches the count.
        let updated = sqlx::query(
            "with s as (
                select d.id,
                       count(r.id) filter (where r.state = 'accepted') as accepted,
                       count(r.id) filter (where r.state = 'submitted') as pending,
                       array_agg(r.submitted_at order by r.submitted_at) filter (where r.state = 'accepted') as times
                from duty d
                left join record r on r.org_id = d.org_id and r.rule_id = d.rule_id and r.period_key = d.period_key
                     and r.person_id is not distinct from d.person_id and r.state in ('accepted', 'submitted')
                where d.rule_id = $1 and d.period_key = $2 and (d.required <> $3 or d.due_at <> $4)
                group by d.id)
             update duty d set required = $3, due_at = $4, accepted = s.accepted, pending = s.pending,
                    nth_accepted_at = case when s.accepted >= $3 then s.times[$3] end
             from s where d.id = s.id",
        )
        .bind(rule.id)
        .bind(&period_key)
        .bind(change.min_count)
        .bind(dl.due_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let created: Vec<i64> = sqlx::query_scalar(
            "insert into duty (org_id, rule_id, person_id, period_key, required, due_at, cancelled, created_at,
                               waived_at, waived_by, waived_reason)
             select org_id, rule_id, person_id, period_key, required, due_at, cancelled, $3,
                    waived_at, waived_by, waived_reason
             from owed_duty where rule_id = $1 and period_key = $2
             on conflict do nothing
             returning id",
        )
        .bind(rule.id)
        .bind(&period_key)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        duties::recount(conn, &created).await?;
        impact.periods.push(period_key);
        impact.duties_removed += removed as i64;
        impact.duties_created += created.len() as i64;
        impact.duties_updated += updated as i64;
    }
    impact.orgs_after = orgs_owing(conn, rule.id, &key).await?;
    Ok(impact)
}

async fn orgs_owing(conn: &mut PgConnection, rule_id: i64, period_key: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(distinct org_id) from duty where rule_id = $1 and period_key = $2")
        .bind(rule_id)
        .bind(period_key)
        .fetch_one(conn)
        .await
}

/// Waive a rule for one organisation from now on, with a reason: its unfinished duties of
/// periods not yet ended, and every later one, are waived.
pub async fn waive_for_org(
    conn: &mut PgConnection,
    rule: &Rule,
    org: &Org,
    reason: &str,
    by: Option<i64>,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> AppResult<i64> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::bad_input("reason", "say in 1–1,000 characters why the rule is waived"));
    }
    duties::lock_shared(conn).await?;
    let taken: bool =
        sqlx::query_scalar("select exists (select 1 from rule_waiver where rule_id = $1 and org_id = $2)")
            .bind(rule.id)
            .bind(org.id)
            .fetch_one(&mut *conn)
            .await?;
    if taken {
        return Err(AppError::conflict("the rule is waived for this organisation already"));
    }
    sqlx::query(
        "insert into rule_waiver (rule_id, org_id, reason, created_by, created_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(rule.id)
    .bind(org.id)
    .bind(reason)
    .bind(by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let waived = sqlx::query(
        "update duty d set waived_at = $4, waived_by = $5, waived_reason = $3
         from rule_period rp
         where d.rule_id = $1 and d.org_id = $2 and d.class = 'pending'
           and rp.rule_id = d.rule_id and rp.period_key = d.period_key and rp.period_end > $6",
    )
    .bind(rule.id)
    .bind(org.id)
    .bind(reason)
    .bind(now)
    .bind(by)
    .bind(today)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(waived as i64)
}

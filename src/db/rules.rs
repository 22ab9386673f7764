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

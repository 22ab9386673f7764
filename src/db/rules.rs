//! Responsibility systems, their rules and the rules' versions; installing the built-in
//! templates.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties::{self, Materialized};
use super::orgs::Org;
use super::settings::Settings;
use crate::domain::period::Cadence;
use crate::domain::templates::Template;
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
    let system_taken: bool = sqlx::query_scalar("select exists (select 1 from responsibility_system where code = $1)")
        .bind(template.code)
        .fetch_one(&mut *conn)
        .await?;
    if system_taken || !taken.is_empty() {
        return Err(AppError::conflict(format!(
            "template {} is installed already (rules {} exist)",
            template.code,
            taken.join(", ")
        )));
    }
    let system_id: i64 = sqlx::query_scalar(
        "insert into responsibility_system (code, title, template, created_at) values ($1, $2, $1, $3) returning id",
    )
    .bind(template.code)
    .bind(template.title)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let mut rule_ids = Vec::with_capacity(template.rules.len());
    for (position, spec) in template.rules.iter().enumerate() {
        let rule_id: i64 = sqlx::query_scalar(
            "insert into rule (system_id, code, position, cadence, binds, record_kind, created_at)
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(system_id)
        .bind(spec.code)
        .bind(position as i32 + 1)
        .bind(spec.cadence.as_str())
        .bind(spec.binds.as_str())
        .bind(spec.record_kind)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        let version_id: i64 = sqlx::query_scalar(
            "insert into rule_version (rule_id, effective_from, title, clause, root_org_id, responsible_role, min_count,
                                       grace_days, lead_days, needs_review, created_at, created_by)
             values ($1, $2, $3, $4, $5, $6, $7, 0, null, $8, $9, $10) returning id",
        )
        .bind(rule_id)
        .bind(effective_from)
        .bind(spec.title)
        .bind(spec.clause)
        .bind(root.map(|r| r.id))
        .bind(spec.responsible_role)
        .bind(spec.min_count as i32)
        .bind(spec.needs_review)
        .bind(now)
        .bind(actor)
        .fetch_one(&mut *conn)
        .await?;
        sqlx::query("insert into rule_version_kind (version_id, kind) select $1, unnest($2::text[])")
            .bind(version_id)
            .bind(spec.kinds)
            .execute(&mut *conn)
            .await?;
        rule_ids.push(rule_id);
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

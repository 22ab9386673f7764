//! Records: the minutes or report that fulfil a duty, their versions, submission, review
//! and withdrawal. Each change recounts the duty it counts for and writes the audit log,
//! in the same transaction.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;

use super::audit;
use super::duties;
use super::orgs::Org;
use super::rules::{self, Rule};
use crate::domain::access::Principal;
use crate::domain::period::Period;
use crate::error::{AppError, AppResult};

/// Who is acting and from where, for permission checks and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub principal: &'a Principal,
    pub tz: Tz,
    pub ip: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
}

/// Someone who was expected at a meeting and did not come, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absentee {
    pub name: String,
    #[serde(default)]
    pub reason: String,
}

/// What a meeting record says beyond its title and minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    #[serde(default)]
    pub place: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub expected: Option<i32>,
    #[serde(default)]
    pub present: Option<i32>,
    #[serde(default)]
    pub absentees: Vec<Absentee>,
}

/// The text of a record, validated at the edge: one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordText {
    pub title: String,
    pub body: String,
    pub attendees: Vec<String>,
    pub meeting: Option<Meeting>,
}

impl RecordText {
    /// Check and tidy the text; every problem names its field.
    pub fn parse(title: &str, body: &str, attendees: Vec<String>, meeting: Option<Meeting>) -> AppResult<RecordText> {
        let title = title.trim();
        if title.is_empty() {
            return Err(AppError::bad_input("title", "a title is required"));
        }
        if title.chars().count() > 200 {
            return Err(AppError::bad_input("title", "a title has at most 200 characters"));
        }
        if body.chars().count() > 100_000 {
            return Err(AppError::bad_input("body", "the text has at most 100,000 characters"));
        }
        if attendees.len() > 2000 {
            return Err(AppError::bad_input("attendees", "at most 2,000 attendees"));
        }
        let mut names = Vec::with_capacity(attendees.len());
        for a in attendees {
            let a = a.trim();
            if a.chars().count() > 100 {
                return Err(AppError::bad_input("attendees", "a name has at most 100 characters"));
            }
            if !a.is_empty() {
                names.push(a.to_owned());
            }
        }
        if let Some(m) = &meeting {
            if m.place.chars().count() > 200 {
                return Err(AppError::bad_input("place", "a place has at most 200 characters"));
            }
            if m.host.chars().count() > 100 {
                return Err(AppError::bad_input("host", "a name has at most 100 characters"));
            }
            for (field, n) in [("expected", m.expected), ("present", m.present)] {
                if n.is_some_and(|n| !(0..=100_000).contains(&n)) {
                    return Err(AppError::bad_input(field, "a number from 0 to 100,000"));
                }
            }
            if let (Some(e), Some(p)) = (m.expected, m.present)
                && p > e
            {
                return Err(AppError::bad_input("present", "more present than expected"));
            }
            if m.absentees.len() > 2000
                || m.absentees.iter().any(|a| a.name.chars().count() > 100 || a.reason.chars().count() > 500)
            {
                return Err(AppError::bad_input("absentees", "a name has at most 100 characters and a reason 500"));
            }
        }
        Ok(RecordText { title: title.to_owned(), body: body.replace("\r\n", "\n"), attendees: names, meeting })
    }
}

/// A new record, validated at the edge.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub rule_code: String,
    pub person_id: Option<i64>,
    pub occurred_on: NaiveDate,
    pub text: RecordText,
    pub draft: bool,
}

/// A record as pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub id: String,
    pub org: String,
    pub org_name: String,
    pub rule: String,
    pub rule_title: String,
    pub person: Option<String>,
    pub person_name: Option<String>,
    pub period: String,
    pub occurred_on: NaiveDate,
    pub state: String,
    pub version: i32,
    pub title: String,
    pub body: String,
    pub attendees: Vec<String>,
    pub meeting: Option<Meeting>,
    pub created_by: String,
    pub created_at: DateTime<FixedOffset>,
    pub submitted_at: Option<DateTime<FixedOffset>>,
    pub submitted_by: Option<String>,
    pub accepted_at: Option<DateTime<FixedOffset>>,
    pub withdrawn_at: Option<DateTime<FixedOffset>>,
    pub withdrawn_reason: Option<String>,
    pub needs_review: bool,
    #[serde(skip)]
    pub org_path: Vec<i64>,
    #[serde(skip)]
    pub org_id: i64,
    #[serde(skip)]
    pub rule_id: i64,
    #[serde(skip)]
    pub person_id: Option<i64>,
    #[serde(skip)]
    pub submitted_by_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: i64,
    org_id: i64,
    org: String,
    org_name: String,
    org_path: Vec<i64>,
    rule_id: i64,
    rule: String,
    person_id: Option<i64>,
    person_name: Option<String>,
    period_key: String,
    occurred_on: NaiveDate,
    state: String,
    version: i32,
    title: String,
    body: String,
    attendees: serde_json::Value,
    meeting: Option<serde_json::Value>,
    created_by: String,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    submitted_by_id: Option<i64>,
    submitted_by: Option<String>,
    accepted_at: Option<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
    withdrawn_reason: Option<String>,
    rule_title: String,
    needs_review: bool,
}

impl RecordRow {
    /// The record as shown, with its instants in the deployment's local offset.
    fn view(self, tz: Tz) -> RecordView {
        let r = self;
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).fixed_offset();
        RecordView {
            id: r.id.to_string(),
            org: r.org,
            org_name: r.org_name,
            rule: r.rule,
            rule_title: r.rule_title,
            person: r.person_id.map(|p| p.to_string()),
            person_name: r.person_name,
            period: r.period_key,
            occurred_on: r.occurred_on,
            state: r.state,
            version: r.version,
            title: r.title,
            body: r.body,
            attendees: serde_json::from_value(r.attendees).unwrap_or_default(),
            meeting: r.meeting.and_then(|m| serde_json::from_value(m).ok()),
            created_by: r.created_by,
            created_at: local(r.created_at),
            submitted_at: r.submitted_at.map(local),
            submitted_by: r.submitted_by,
            accepted_at: r.accepted_at.map(local),
            withdrawn_at: r.withdrawn_at.map(local),
            withdrawn_reason: r.withdrawn_reason,
            needs_review: r.needs_review,
            org_path: r.org_path,
            org_id: r.org_id,
            rule_id: r.rule_id,
            person_id: r.person_id,
            submitted_by_id: r.submitted_by_id,
        }
    }
}

/// The record query with a fixed clause appended (a macro keeps the SQL a literal).
macro_rules! select_record {
    ($clause:literal) => {
        concat!(
            "select rec.id, rec.org_id, o.code as org, o.name as org_name, o.path as org_path, rec.rule_id, r.code as rule,
                    rec.person_id, p.name as person_name, rec.period_key, rec.occurred_on, rec.state, rec.version,
                    v.title, v.body, v.attendees, v.meeting, cu.login as created_by, rec.created_at, rec.submitted_at,
                    rec.submitted_by as submitted_by_id, su.login as submitted_by, rec.accepted_at, rec.withdrawn_at,
                    rec.withdrawn_reason, rv.title as rule_title, rv.needs_review
             from record rec
             join org o on o.id = rec.org_id
             join rule r on r.id = rec.rule_id
             join record_version v on v.record_id = rec.id and v.version = rec.version
             join app_user cu on cu.id = rec.created_by
             left join app_user su on su.id = rec.submitted_by
             left join person p on p.id = rec.person_id
             left join rule_period rpd on rpd.rule_id = rec.rule_id and rpd.period_key = rec.period_key
             join lateral (select title, needs_review from rule_version
                           where rule_id = rec.rule_id
                           order by (id = rpd.version_id) desc, (effective_from <= rec.occurred_on) desc, effective_from desc
                           limit 1) rv on true ",
            $clause
        )
    };
}

pub async fn find(conn: &mut PgConnection, id: i64, tz: Tz) -> sqlx::Result<Option<RecordView>> {
    let row: Option<RecordRow> =
        sqlx::query_as(select_record!("where rec.id = $1")).bind(id).fetch_optional(conn).await?;
    Ok(row.map(|r| r.view(tz)))
}

/// Records of one organisation for one rule and period (the duty's records), oldest first.
pub async fn for_duty(
    conn: &mut PgConnection,
    org_id: i64,
    rule_id: i64,
    person_id: Option<i64>,
    period_key: &str,
    tz: Tz,
) -> sqlx::Result<Vec<RecordView>> {
    let rows: Vec<RecordRow> = sqlx::query_as(select_record!(
        "where rec.org_id = $1 and rec.rule_id = $2 and rec.person_id is not distinct from $3 and rec.period_key = $4
         order by rec.created_at limit 200"
    ))
    .bind(org_id)
    .bind(rule_id)
    .bind(person_id)
    .bind(period_key)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.view(tz)).collect())
}

/// Records awaiting review from the children of the given organisations, oldest first.
pub async fn awaiting_review(
    conn: &mut PgConnection,
    parent_ids: Option<&[i64]>,
    limit: i64,
    tz: Tz,
) -> sqlx::Result<Vec<RecordView>> {
    let rows: Vec<RecordRow> = sqlx::query_as(select_record!(
        "where rec.state = 'submitted'
           and ($1::bigint[] is null or rec.org_id in (select id from org where parent_id = any($1)))
         order by rec.submitted_at limit $2"
    ))
    .bind(parent_ids)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.view(tz)).collect())
}

/// Lock a record for a change and return it.
async fn lock(conn: &mut PgConnection, id: i64, tz: Tz) -> AppResult<RecordView> {
    let found: Option<i64> = sqlx::query_scalar("select id from record where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if found.is_none() {
        return Err(AppError::not_found("record"));
    }
    find(conn, id, tz).await?.ok_or_else(|| AppError::not_found("record"))
}

/// The record's organisation must be visible (else 404) and the actor allowed to file
/// records for it (else 403).
fn check_submitter(actor: &Actor<'_>, rec: &RecordView) -> AppResult<()> {
    if !actor.principal.can_see(&rec.org_path) {
        return Err(AppError::not_found("record"));
    }
    if !actor.principal.can_submit(&rec.org_path, rec.person_id) {
        return Err(AppError::forbidden("you may not file records for this organisation"));
    }
    Ok(())
}

/// Whether the rule's version for the record's period needs review.
async fn needs_review(conn: &mut PgConnection, rule_id: i64, period: Period) -> AppResult<bool> {
    let pinned: Option<bool> = sqlx::query_scalar(
        "select v.needs_review from rule_period rp join rule_version v on v.id = rp.version_id
         where rp.rule_id = $1 and rp.period_key = $2",
    )
    .bind(rule_id)
    .bind(period.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    match pinned {
        Some(v) => Ok(v),
        None => Ok(rules::version_on(conn, rule_id, period.first_day()).await?.is_some_and(|v| v.needs_review)),
    }
}

async fn write_audit(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    action: &str,
    rec_id: i64,
    org_id: i64,
    detail: serde_json::Value,
) -> AppResult<()> {
    audit::write(
        conn,
        audit::Entry::by(
            actor.principal,
            actor.now,
            actor.ip,
            action,
            ("record", rec_id.to_string()),
            Some(org_id),
            detail,
        ),
    )
    .await?;
    Ok(())
}

async fn recount(conn: &mut PgConnection, actor: &Actor<'_>, rec: &RecordView) -> AppResult<()> {
    duties::refresh(conn, rec.org_id, rec.rule_id, rec.person_id, &rec.period, actor.now, actor.today).await?;
    Ok(())
}

/// Create a record for an organisation the actor can see: submitted (or accepted, when
/// the rule needs no review) unless it is a draft.
pub async fn create(conn: &mut PgConnection, actor: &Actor<'_>, org: &Org, new: NewRecord) -> AppResult<RecordView> {
    let rule: Rule = rules::find_by_code(conn, &new.rule_code)
        .await?
        .ok_or_else(|| AppError::bad_input("rule", format!("no rule has the code {:?}", new.rule_code)))?;
    let version = rules::version_on(conn, rule.id, new.occurred_on)
        .await?
        .ok_or_else(|| AppError::bad_input("rule", "the rule has no version"))?;
    if !rules::binds(&version, org) {
        return Err(AppError::bad_input("rule", format!("rule {} does not bind {}", rule.code, org.code)));
    }
    let person_id = if rule.binds_each_member() {
        let Some(person_id) = new.person_id else {
            return Err(AppError::bad_input(
                "person",
                format!("rule {} binds each leadership member: name the person", rule.code),
            ));
        };
        let is_member: bool = sqlx::query_scalar(
            "select exists (select 1 from role_assignment where org_id = $1 and person_id = $2 and role = 'member')",
        )
        .bind(org.id)
        .bind(person_id)
        .fetch_one(&mut *conn)
        .await?;
        if !is_member {
            return Err(AppError::bad_input("person", "that person is not a leadership member of this organisation"));
        }
        Some(person_id)
    } else {
        if new.person_id.is_some() {
            return Err(AppError::bad_input(
                "person",
                format!("rule {} binds the organisation, not a person", rule.code),
            ));
        }
        None
    };
    if !actor.principal.can_submit(&org.path, person_id) {
        return Err(AppError::forbidden("you may not file records for this organisation"));
    }
    if new.occurred_on > actor.today {
        return Err(AppError::bad_input("occurred_on", "the date is in the future"));
    }
    if !org.is_active_on(new.occurred_on) {
        return Err(AppError::bad_input("occurred_on", "the organisation was not active on that date"));
    }
    let period = Period::containing(rule.cadence(), new.occurred_on);
    let review = needs_review(conn, rule.id, period).await?;
    duties::lock_shared(conn).await?;
    let state = match (new.draft, review) {
        (true, _) => "draft",
        (false, true) => "submitted",
        (false, false) => "accepted",
    };
    let submitted_at = (!new.draft).then_some(actor.now);
    let id: i64 = sqlx::query_scalar(
        "insert into record (org_id, rule_id, person_id, period_key, occurred_on, state, created_by, created_at,
                             first_submitted_at, submitted_at, submitted_by, accepted_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) returning id",
    )
    .bind(org.id)
    .bind(rule.id)
    .bind(person_id)
    .bind(period.to_string())
    .bind(new.occurred_on)
    .bind(state)
    .bind(actor.principal.user_id)
    .bind(actor.now)
    .bind(submitted_at)
    .bind(submitted_at.map(|_| actor.principal.user_id))
    .bind((state == "accepted").then_some(actor.now))
    .fetch_one(&mut *conn)
    .await?;
    insert_version(conn, id, 1, &new.text, actor).await?;
    let rec = find(conn, id, actor.tz).await?.ok_or_else(|| anyhow::anyhow!("the new record vanished"))?;
    recount(conn, actor, &rec).await?;
    write_audit(conn, actor, if new.draft { "record.draft" } else { "record.submit" }, id, org.id, json!({
        "rule": rule.code, "period": rec.period, "occurred_on": new.occurred_on, "state": state, "title": new.text.title,
    }))
    .await?;
    Ok(rec)
}

async fn insert_version(
    conn: &mut PgConnection,
    id: i64,
    version: i32,
    text: &RecordText,
    actor: &Actor<'_>,
) -> AppResult<()> {
    sqlx::query(
        "insert into record_version (record_id, version, title, body, attendees, meeting, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(version)
    .bind(&text.title)
    .bind(&text.body)
    .bind(json!(text.attendees))
    .bind(text.meeting.as_ref().map(|m| json!(m)))
    .bind(actor.principal.user_id)
    .bind(actor.now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Submit a draft, or resubmit a returned record; its `submitted_at` becomes now.
pub async fn submit(conn: &mut PgConnection, actor: &Actor<'_>, id: i64) -> AppResult<RecordView> {
    duties::lock_shared(conn).await?;
    let rec = lock(conn, id, actor.tz).await?;
    check_submitter(actor, &rec)?;
    if rec.state != "draft" && rec.state != "returned" {
        return Err(AppError::conflict(format!("a record that is {} cannot be submitted", rec.state)));
    }
    let period: Period =
        rec.period.parse().map_err(|_| anyhow::anyhow!("stored period key {} is malformed", rec.period))?;
    let review = needs_review(conn, rec.rule_id, period).await?;
    let state = if review { "submitted" } else { "accepted" };
    sqlx::query(
        "update record set state = $2, submitted_at = $3, submitted_by = $4,
                first_submitted_at = coalesce(first_submitted_at, $3),
                accepted_at = case when $2 = 'accepted' then coalesce(accepted_at, $3) else accepted_at end
         where id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(actor.now)
    .bind(actor.principal.user_id)
    .execute(&mut *conn)
    .await?;
    recount(conn, actor, &rec).await?;
    let action = if rec.state == "returned" { "record.resubmit" } else { "record.submit" };
    write_audit(conn, actor, action, id, rec.org_id, json!({"state": state})).await?;
    find(conn, id, actor.tz).await?.ok_or_else(|| AppError::not_found("record"))
}

/// The superior's decision on a submitted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Return,
}

/// Accept a submitted record, or return it with a comment the organisation will see.
pub async fn review(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    id: i64,
    decision: Decision,
    comment: &str,
) -> AppResult<RecordView> {
    duties::lock_shared(conn).await?;
    let rec = lock(conn, id, actor.tz).await?;
    if !actor.principal.can_see(&rec.org_path) && !actor.principal.can_review(&rec.org_path) {
        return Err(AppError::not_found("record"));
    }
    if !actor.principal.can_review(&rec.org_path) {
        return Err(AppError::forbidden(
            "only the parent organisation's secretaries and coordinators review these records",
        ));
    }
    // An admin may (the contract's own check files and reviews with one admin token);
    // everyone else reviews only what others submitted.
    if rec.submitted_by_id == Some(actor.principal.user_id) && !actor.principal.is_admin {
        return Err(AppError::forbidden("nobody reviews a record they submitted"));
    }
    if rec.state != "submitted" {
        return Err(AppError::conflict(format!("a record that is {} cannot be reviewed", rec.state)));
    }
    let comment = comment.trim();
    if comment.chars().count() > 2000 {
        return Err(AppError::bad_input("comment", "a comment has at most 2,000 characters"));
    }
    let (state, word) = match decision {
        Decision::Accept => ("accepted", "accept"),
        Decision::Return => {
            if comment.is_empty() {
                return Err(AppError::bad_input("comment", "say what needs to change when returning a record"));
            }
            ("returned", "return")
        }
    };
    sqlx::query(
        "update record set state = $2,
                accepted_at = case when $2 = 'accepted' then coalesce(accepted_at, $3) else accepted_at end
         where id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(actor.now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into record_review (record_id, reviewer_id, decision, comment, created_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(actor.principal.user_id)
    .bind(word)
    .bind(comment)
    .bind(actor.now)
    .execute(&mut *conn)
    .await?;
    recount(conn, actor, &rec).await?;
    write_audit(conn, actor, &format!("record.{word}"), id, rec.org_id, json!({"comment": comment})).await?;
    find(conn, id, actor.tz).await?.ok_or_else(|| AppError::not_found("record"))
}

/// Correct a record's text: a new version; the history stays.
pub async fn add_version(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    id: i64,
    text: RecordText,
) -> AppResult<RecordView> {
    let rec = lock(conn, id, actor.tz).await?;
    check_submitter(actor, &rec)?;
    if rec.state == "withdrawn" {
        return Err(AppError::conflict("a withdrawn record cannot be corrected"));
    }
    let version = rec.version + 1;
    insert_version(conn, id, version, &text, actor).await?;
    sqlx::query("update record set version = $2 where id = $1").bind(id).bind(version).execute(&mut *conn).await?;
    write_audit(conn, actor, "record.correct", id, rec.org_id, json!({"version": version, "title": text.title}))
        .await?;
    find(conn, id, actor.tz).await?.ok_or_else(|| AppError::not_found("record"))
}

/// Withdraw a record filed in error: it stops counting and keeps its history.
pub async fn withdraw(conn: &mut PgConnection, actor: &Actor<'_>, id: i64, reason: &str) -> AppResult<RecordView> {
    duties::lock_shared(conn).await?;
    let rec = lock(conn, id, actor.tz).await?;
    check_submitter(actor, &rec)?;
    if rec.state == "withdrawn" {
        return Err(AppError::conflict("the record is withdrawn already"));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::bad_input("reason", "say in 1–1,000 characters why the record is withdrawn"));
    }
    sqlx::query("update record set state = 'withdrawn', withdrawn_at = $2, withdrawn_by = $3, withdrawn_reason = $4 where id = $1")
        .bind(id)
        .bind(actor.now)
        .bind(actor.principal.user_id)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    recount(conn, actor, &rec).await?;
    write_audit(conn, actor, "record.withdraw", id, rec.org_id, json!({"reason": reason, "was": rec.state})).await?;
    find(conn, id, actor.tz).await?.ok_or_else(|| AppError::not_found("record"))
}

/// One entry of a record's history: a version, a submission or a review.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: serde_json::Value,
}

/// Who did what to a record, when, oldest first (from the audit log).
pub async fn history(conn: &mut PgConnection, id: i64) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as(
        "select at, actor, action, detail from audit_log
         where object_type = 'record' and object_id = $1::text order by at, id limit 500",
    )
    .bind(id.to_string())
    .fetch_all(conn)
    .await
}

// ---- Appended for the record pages (forms, record page, duty page, review queue). ----

/// Move a draft to another day. Only drafts move: the day is fixed at the first
/// submission. The same checks as [`create`]: not after today, the organisation active
/// that day, and the rule, as in force that day, binding it.
pub async fn change_draft_date(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    id: i64,
    occurred_on: NaiveDate,
) -> AppResult<RecordView> {
    duties::lock_shared(conn).await?;
    let rec = lock(conn, id, actor.tz).await?;
    check_submitter(actor, &rec)?;
    if rec.state != "draft" {
        return Err(AppError::conflict("the date is fixed once a record has been submitted"));
    }
    if rec.occurred_on == occurred_on {
        return Ok(rec);
    }
    if occurred_on > actor.today {
        return Err(AppError::bad_input("occurred_on", "the date is in the future"));
    }
    let org = super::orgs::find_by_id(conn, rec.org_id).await?.ok_or_else(|| AppError::not_found("record"))?;
    if !org.is_active_on(occurred_on) {
        return Err(AppError::bad_input("occurred_on", "the organisation was not active on that date"));
    }
    let rule: Rule = sqlx::query_as("select id, code, system_id, cadence, binds, record_kind from rule where id = $1")
        .bind(rec.rule_id)
        .fetch_one(&mut *conn)
        .await?;
    let binds = rules::version_on(conn, rule.id, occurred_on).await?.is_some_and(|v| rules::binds(&v, &org));
    if !binds {
        return Err(AppError::bad_input(
            "occurred_on",
            format!("rule {} does not bind {} on that date", rule.code, org.code),
        ));
    }
    let period = Period::containing(rule.cadence(), occurred_on);
    sqlx::query("update record set occurred_on = $2, period_key = $3 where id = $1")
        .bind(id)
        .bind(occurred_on)
        .bind(period.to_string())
        .execute(&mut *conn)
        .await?;
    recount(conn, actor, &rec).await?;
    let moved = find(conn, id, actor.tz).await?.ok_or_else(|| AppError::not_found("record"))?;
    recount(conn, actor, &moved).await?;
    write_audit(conn, actor, "record.redate", id, rec.org_id, json!({"from": rec.occurred_on, "to": occurred_on}))
        .await?;
    Ok(moved)
}

/// One entry of a record's history with the actor's name (from the audit log).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NamedHistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_name: Option<String>,
    pub action: String,
    pub detail: serde_json::Value,
}

/// Who did what to a record, when, oldest first, with names as people read them.
pub async fn history_named(conn: &mut PgConnection, id: i64) -> sqlx::Result<Vec<NamedHistoryEntry>> {
    sqlx::query_as(
        "select a.at, a.actor, p.name as actor_name, a.action, a.detail
         from audit_log a left join app_user u on u.id = a.actor_id left join person p on p.id = u.person_id
         where a.object_type = 'record' and a.object_id = $1::text order by a.at, a.id limit 500",
    )
    .bind(id.to_string())
    .fetch_all(conn)
    .await
}

/// One version of a record's text, with who wrote it and when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionText {
    pub version: i32,
    pub title: String,
    pub body: String,
    pub attendees: serde_json::Value,
    pub meeting: Option<serde_json::Value>,
    pub author: String,
    pub author_name: String,
    pub created_at: DateTime<Utc>,
}

impl VersionText {
    pub fn attendee_list(&self) -> Vec<String> {
        serde_json::from_value(self.attendees.clone()).unwrap_or_default()
    }

    pub fn meeting_details(&self) -> Option<Meeting> {
        self.meeting.clone().and_then(|m| serde_json::from_value(m).ok())
    }
}

/// Every version of a record, oldest first (bodies included; at most 500).
pub async fn versions(conn: &mut PgConnection, id: i64) -> sqlx::Result<Vec<VersionText>> {
    sqlx::query_as(
        "select v.version, v.title, v.body, v.attendees, v.meeting, u.login as author, p.name as author_name,
                v.created_at
         from record_version v join app_user u on u.id = v.created_by join person p on p.id = u.person_id
         where v.record_id = $1 order by v.version limit 500",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// One version of a record's text.
pub async fn version_text(conn: &mut PgConnection, id: i64, version: i32) -> sqlx::Result<Option<VersionText>> {
    sqlx::query_as(
        "select v.version, v.title, v.body, v.attendees, v.meeting, u.login as author, p.name as author_name,
                v.created_at
         from record_version v join app_user u on u.id = v.created_by join person p on p.id = u.person_id
         where v.record_id = $1 and v.version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// Records of root organisations awaiting review (an admin reviews those), oldest first.
pub async fn awaiting_review_roots(conn: &mut PgConnection, limit: i64, tz: Tz) -> sqlx::Result<Vec<RecordView>> {
    let rows: Vec<RecordRow> = sqlx::query_as(select_record!(
        "where rec.state = 'submitted' and o.parent_id is null order by rec.submitted_at limit $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.view(tz)).collect())
}

/// The deadlines (`due_at`) of some (rule, period) pairs: the same for every organisation.
pub async fn due_dates(
    conn: &mut PgConnection,
    keys: &[(i64, String)],
) -> sqlx::Result<std::collections::HashMap<(i64, String), DateTime<Utc>>> {
    let rule_ids: Vec<i64> = keys.iter().map(|(r, _)| *r).collect();
    let periods: Vec<String> = keys.iter().map(|(_, p)| p.clone()).collect();
    let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "select rp.rule_id, rp.period_key, rp.due_at from rule_period rp
         join unnest($1::bigint[], $2::text[]) as k(rule_id, period_key)
           on k.rule_id = rp.rule_id and k.period_key = rp.period_key",
    )
    .bind(&rule_ids)
    .bind(&periods)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(r, p, d)| ((r, p), d)).collect())
}

/// Which duty a duty id names (the duty page starts from it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DutyRef {
    pub id: i64,
    pub org_id: i64,
    pub rule_id: i64,
    pub person_id: Option<i64>,
    pub period_key: String,
}

pub async fn find_duty_ref(conn: &mut PgConnection, duty_id: i64) -> sqlx::Result<Option<DutyRef>> {
    sqlx::query_as("select id, org_id, rule_id, person_id, period_key from duty where id = $1")
        .bind(duty_id)
        .fetch_optional(conn)
        .await
}

/// The duty a record counts for, if it exists.
pub async fn duty_ref_of(conn: &mut PgConnection, rec: &RecordView) -> sqlx::Result<Option<DutyRef>> {
    sqlx::query_as(
        "select id, org_id, rule_id, person_id, period_key from duty
         where org_id = $1 and period_key = $2 and rule_id = $3 and person_id is not distinct from $4",
    )
    .bind(rec.org_id)
    .bind(&rec.period)
    .bind(rec.rule_id)
    .bind(rec.person_id)
    .fetch_optional(conn)
    .await
}

/// The names of some users' people, by user id (lists show who submitted).
pub async fn user_names(
    conn: &mut PgConnection,
    user_ids: &[i64],
) -> sqlx::Result<std::collections::HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("select u.id, p.name from app_user u join person p on p.id = u.person_id where u.id = any($1)")
            .bind(user_ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

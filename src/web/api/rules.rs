//! `/api/v1/systems` and `/api/v1/rules`: responsibility systems and their rules, for
//! admins — list and create systems, read a rule with its versions and waivers, add a
//! rule, change one from a date, waive one for an organisation. Adding and changing take
//! `dry_run`: the change is made in a transaction that is rolled back, so the answer
//! says exactly what it would do and nothing changes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{ApiJson, ApiUser, created};
use crate::app::App;
use crate::db::rules::{self, Rule};
use crate::db::systems::{self, Problems, RuleInput, VersionView, WaiverView};
use crate::db::{audit, duties, orgs};
use crate::domain::period::Period;
use crate::error::{AppError, AppResult};
use crate::web::guard;
use crate::web::i18n::{Locale, Tr};

pub fn router() -> Router<App> {
    Router::new()
        .route("/systems", get(list_systems).post(create_system))
        .route("/systems/{code}/rules", post(create_rule))
        .route("/rules/{code}", get(get_rule))
        .route("/rules/{code}/versions", post(change_rule))
        .route("/rules/{code}/waivers", post(waive_for_org))
}

/// The first problem of a form as a 400 naming its field, in English.
fn bad_input(problems: &Problems) -> AppError {
    let t = Tr::new(Locale::En);
    match problems.0.first() {
        Some(p) => AppError::bad_input(p.field, t.f1(&format!("rules.{}", p.key), &p.arg)),
        None => AppError::bad_input("body", "the request is not valid"),
    }
}

/// `Some(None)` for an explicit null, `None` for an absent field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

async fn find_rule(conn: &mut PgConnection, code: &str) -> AppResult<Rule> {
    if code.len() > 64 || code.contains('\0') {
        return Err(AppError::not_found(format!("rule {code}")));
    }
    rules::find_by_code(conn, code).await?.ok_or_else(|| AppError::not_found(format!("rule {code}")))
}

// ---------------------------------------------------------------------------------------
// Systems
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct RuleSummaryJson {
    code: String,
    title: String,
    clause: String,
    kinds: Vec<String>,
    cadence: String,
    binds: String,
    record_kind: String,
    responsible_role: String,
    min_count: i32,
    grace_days: i32,
    lead_days: Option<i32>,
    needs_review: bool,
    root: Option<String>,
    in_force_since: NaiveDate,
    version_since: NaiveDate,
    retired: bool,
    next_change: Option<NaiveDate>,
    period: String,
    owing: i64,
}

#[derive(Serialize)]
struct SystemJson {
    code: String,
    title: String,
    template: Option<String>,
    rules: Vec<RuleSummaryJson>,
}

async fn list_systems(State(app): State<App>, user: ApiUser) -> AppResult<Json<Vec<SystemJson>>> {
    guard::require_admin(&user.principal)?;
    app.ensure_duties(user.now).await?;
    let mut conn = app.pool.acquire().await?;
    let list = systems::list_systems(&mut conn).await?;
    let ids: Vec<i64> = list.iter().map(|s| s.id).collect();
    let all = systems::rules_of_systems(&mut conn, &ids, user.today).await?;
    let periods: Vec<(i64, String)> =
        all.iter().map(|r| (r.rule_id, Period::containing(r.cadence(), user.today).to_string())).collect();
    let owing = systems::owing_counts(&mut conn, &periods).await?;
    Ok(Json(
        list.into_iter()
            .map(|s| SystemJson {
                rules: all
                    .iter()
                    .filter(|r| r.system_id == s.id)
                    .map(|r| RuleSummaryJson {
                        code: r.code.clone(),
                        title: r.title.clone(),
                        clause: r.clause.clone(),
                        kinds: r.kinds.clone(),
                        cadence: r.cadence.clone(),
                        binds: r.binds.clone(),
                        record_kind: r.record_kind.clone(),
                        responsible_role: r.responsible_role.clone(),
                        min_count: r.min_count,
                        grace_days: r.grace_days,
                        lead_days: r.lead_days,
                        needs_review: r.needs_review,
                        root: r.root_code.clone(),
                        in_force_since: r.first_effective,
                        version_since: r.version_from,
                        retired: r.retired,
                        next_change: r.next_change,
                        period: Period::containing(r.cadence(), user.today).to_string(),
                        owing: owing.get(&r.rule_id).copied().unwrap_or(0),
                    })
                    .collect(),
                code: s.code,
                title: s.title,
                template: s.template,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
struct NewSystem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
}

async fn create_system(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewSystem>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    let mut tx = app.pool.begin().await?;
    let (code, title) = match systems::check_system(&mut tx, &body.code, &body.title).await? {
        Ok(v) => v,
        Err(problems) => {
            // A code that is taken is a conflict, not bad input.
            if problems.get("code").is_some_and(|p| p.key == "err_system_taken") {
                return Err(AppError::conflict(format!(
                    "a responsibility system with the code {:?} exists",
                    body.code
                )));
            }
            return Err(bad_input(&problems));
        }
    };
    let id = rules::create_system(&mut tx, &code, &title, None, user.now).await?;
    audit::write(
        &mut tx,
        user.audit_entry("system.create", ("system", code.clone()), None, json!({"id": id, "title": title})),
    )
    .await?;
    tx.commit().await?;
    Ok(created(json!({"code": code, "title": title, "template": null, "rules": []})))
}

// ---------------------------------------------------------------------------------------
// One rule
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Clone)]
struct VersionJson {
    effective_from: NaiveDate,
    retired: bool,
    title: String,
    clause: String,
    clause_text: String,
    kinds: Vec<String>,
    root: Option<String>,
    responsible_role: String,
    min_count: i32,
    grace_days: i32,
    lead_days: Option<i32>,
    needs_review: bool,
    created_at: DateTime<FixedOffset>,
    created_by: Option<String>,
}

impl VersionJson {
    fn of(v: &VersionView, tz: Tz) -> VersionJson {
        VersionJson {
            effective_from: v.effective_from,
            retired: v.retired,
            title: v.title.clone(),
            clause: v.clause.clone(),
            clause_text: v.clause_text.clone(),
            kinds: v.kinds.clone(),
            root: v.root.clone(),
            responsible_role: v.responsible_role.clone(),
            min_count: v.min_count,
            grace_days: v.grace_days,
            lead_days: v.lead_days,
            needs_review: v.needs_review,
            created_at: v.created_at.with_timezone(&tz).fixed_offset(),
            created_by: v.created_by.clone(),
        }
    }
}

#[derive(Serialize)]
struct WaiverJson {
    org: String,
    reason: String,
    created_at: DateTime<FixedOffset>,
    created_by: Option<String>,
}

impl WaiverJson {
    fn of(w: WaiverView, tz: Tz) -> WaiverJson {
        WaiverJson {
            org: w.org,
            reason: w.reason,
            created_at: w.created_at.with_timezone(&tz).fixed_offset(),
            created_by: w.created_by,
        }
    }
}

#[derive(Serialize)]
struct RuleJson {
    code: String,
    system: String,
    cadence: String,
    binds: String,
    record_kind: String,
    /// The version in force today (before the rule takes effect, its first).
    in_force: Option<VersionJson>,
    versions: Vec<VersionJson>,
    waivers: Vec<WaiverJson>,
}

async fn rule_json(conn: &mut PgConnection, rule: &Rule, today: NaiveDate, tz: Tz) -> AppResult<RuleJson> {
    let system = systems::system_by_id(conn, rule.system_id).await?.map(|s| s.code).unwrap_or_default();
    let versions: Vec<VersionJson> =
        systems::versions(conn, rule.id).await?.iter().map(|v| VersionJson::of(v, tz)).collect();
    let waivers = systems::waivers(conn, rule.id).await?.into_iter().map(|w| WaiverJson::of(w, tz)).collect();
    let in_force = versions.iter().rposition(|v| v.effective_from <= today).or((!versions.is_empty()).then_some(0));
    Ok(RuleJson {
        code: rule.code.clone(),
        system,
        cadence: rule.cadence.clone(),
        binds: rule.binds.clone(),
        record_kind: rule.record_kind.clone(),
        in_force: in_force.map(|i| versions[i].clone()),
        versions,
        waivers,
    })
}

async fn get_rule(State(app): State<App>, user: ApiUser, Path(code): Path<String>) -> AppResult<Json<RuleJson>> {
    guard::require_admin(&user.principal)?;
    let mut conn = app.pool.acquire().await?;
    let rule = find_rule(&mut conn, &code).await?;
    Ok(Json(rule_json(&mut conn, &rule, user.today, app.settings().tz).await?))
}

/// A new rule: its identity and its first version.
#[derive(Deserialize)]
struct NewRuleBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    clause: String,
    #[serde(default)]
    clause_text: String,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    cadence: String,
    #[serde(default)]
    binds: Option<String>,
    #[serde(default)]
    record_kind: String,
    #[serde(default)]
    responsible_role: Option<String>,
    #[serde(default)]
    min_count: Option<i64>,
    #[serde(default)]
    grace_days: Option<i64>,
    #[serde(default)]
    lead_days: Option<i64>,
    #[serde(default)]
    needs_review: bool,
    #[serde(default)]
    effective_from: String,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn number(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

async fn create_rule(
    State(app): State<App>,
    user: ApiUser,
    Path(system_code): Path<String>,
    ApiJson(body): ApiJson<NewRuleBody>,
) -> AppResult<Response> {
    guard::require_admin(&user.principal)?;
    let settings = app.settings();
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let system = if system_code.len() > 64 || system_code.contains('\0') {
        None
    } else {
        systems::find_system(&mut tx, &system_code).await?
    };
    let system = system.ok_or_else(|| AppError::not_found(format!("responsibility system {system_code}")))?;
    let input = RuleInput {
        code: body.code,
        title: body.title,
        clause: body.clause,
        clause_text: body.clause_text,
        kinds: body.kinds,
        cadence: body.cadence,
        binds: body.binds.unwrap_or_default(),
        record_kind: body.record_kind,
        responsible_role: body.responsible_role.unwrap_or_else(|| "secretary".to_owned()),
        min_count: number(body.min_count),
        grace_days: number(body.grace_days.or(Some(0))),
        lead_days: number(body.lead_days),
        needs_review: body.needs_review,
        effective_from: body.effective_from,
        root: body.root.unwrap_or_default(),
        retired: false,
    };
    let new_rule = match systems::check_new_rule(&mut tx, &input, user.today).await? {
        Ok(r) => r,
        Err(problems) if problems.get("code").is_some_and(|p| p.key == "err_rule_taken") => {
            return Err(AppError::conflict(format!("a rule with the code {:?} exists", input.code.trim())));
        }
        Err(problems) => return Err(bad_input(&problems)),
    };
    let rule_id = rules::create_rule(&mut tx, system.id, &new_rule, Some(user.principal.user_id), user.now).await?;
    let done = duties::materialize_rules(&mut tx, &settings, &[rule_id], user.now).await?;
    let current = Period::containing(new_rule.cadence, user.today).to_string();
    let impact = systems::new_rule_impact(&mut tx, rule_id, &current, done.duties).await?;
    if body.dry_run {
        tx.rollback().await?;
        let out = json!({"dry_run": true, "rule": new_rule.code, "period": current, "impact": impact});
        return Ok((StatusCode::OK, Json(out)).into_response());
    }
    audit::write(
        &mut tx,
        user.audit_entry(
            "rule.create",
            ("rule", new_rule.code.clone()),
            new_rule.root_org_id,
            json!({
                "system": system.code,
                "title": new_rule.title,
                "cadence": new_rule.cadence.as_str(),
                "effective_from": new_rule.effective_from,
                "impact": impact,
            }),
        ),
    )
    .await?;
    let rule = find_rule(&mut tx, &new_rule.code).await?;
    let view = rule_json(&mut tx, &rule, user.today, settings.tz).await?;
    tx.commit().await?;
    let out = json!({"dry_run": false, "rule": view, "period": current, "impact": impact});
    Ok(created(out).into_response())
}

/// A new version: the date, and the fields that change (absent ones keep the latest
/// version's values; `root` and `lead_days` may be null).
#[derive(Deserialize)]
struct VersionBody {
    #[serde(default)]
    effective_from: String,
    #[serde(default)]
    retired: bool,
    title: Option<String>,
    clause: Option<String>,
    clause_text: Option<String>,
    kinds: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    root: Option<Option<String>>,
    responsible_role: Option<String>,
    min_count: Option<i64>,
    grace_days: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    lead_days: Option<Option<i64>>,
    needs_review: Option<bool>,
    #[serde(default)]
    dry_run: bool,
}

async fn change_rule(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<VersionBody>,
) -> AppResult<Response> {
    guard::require_admin(&user.principal)?;
    let settings = app.settings();
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let rule = find_rule(&mut tx, &code).await?;
    let latest =
        systems::latest_version(&mut tx, rule.id).await?.ok_or_else(|| AppError::not_found(format!("rule {code}")))?;
    let text = systems::clause_text(&mut tx, latest.id).await?;
    let root = match latest.root_org_id {
        Some(id) => orgs::find_by_id(&mut tx, id).await?.map(|o| o.code),
        None => None,
    };
    let mut input = RuleInput::from_version(&latest, &text, root.as_deref(), user.today);
    input.effective_from = body.effective_from.clone();
    input.retired = body.retired;
    if let Some(v) = body.title {
        input.title = v;
    }
    if let Some(v) = body.clause {
        input.clause = v;
    }
    if let Some(v) = body.clause_text {
        input.clause_text = v;
    }
    if let Some(v) = body.kinds {
        input.kinds = v;
    }
    if let Some(v) = body.root {
        input.root = v.unwrap_or_default();
    }
    if let Some(v) = body.responsible_role {
        input.responsible_role = v;
    }
    if let Some(v) = body.min_count {
        input.min_count = v.to_string();
    }
    if let Some(v) = body.grace_days {
        input.grace_days = v.to_string();
    }
    if let Some(v) = body.lead_days {
        input.lead_days = number(v);
    }
    if let Some(v) = body.needs_review {
        input.needs_review = v;
    }
    let change = match systems::check_change(&mut tx, &rule, &input, user.today).await? {
        Ok(c) => c,
        Err(problems) if problems.get("effective_from").is_some_and(|p| p.key == "err_version_taken") => {
            return Err(AppError::conflict("a version taking effect on that date exists; choose another date"));
        }
        Err(problems) => return Err(bad_input(&problems)),
    };
    let impact =
        rules::change_rule(&mut tx, &settings, &rule, &change, Some(user.principal.user_id), user.now, user.today)
            .await?;
    if body.dry_run {
        tx.rollback().await?;
        let out =
            json!({"dry_run": true, "rule": rule.code, "effective_from": change.effective_from, "impact": impact});
        return Ok((StatusCode::OK, Json(out)).into_response());
    }
    let (action, detail) = change.audit(&impact);
    audit::write(&mut tx, user.audit_entry(action, ("rule", rule.code.clone()), None, detail)).await?;
    let view = rule_json(&mut tx, &rule, user.today, settings.tz).await?;
    tx.commit().await?;
    let out = json!({"dry_run": false, "rule": view, "effective_from": change.effective_from, "impact": impact});
    Ok(created(out).into_response())
}

#[derive(Deserialize)]
struct WaiverBody {
    #[serde(default)]
    org: String,
    #[serde(default)]
    reason: String,
}

async fn waive_for_org(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<WaiverBody>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let rule = find_rule(&mut tx, &code).await?;
    let org_code = body.org.trim();
    if org_code.is_empty() {
        return Err(AppError::bad_input("org", "give the code of the organisation the rule is waived for"));
    }
    let org = if org_code.len() > 64 { None } else { orgs::find_by_code(&mut tx, org_code).await? };
    let org = org.ok_or_else(|| AppError::bad_input("org", format!("no organisation has the code {org_code:?}")))?;
    if !systems::ever_applies_to_kind(&mut tx, rule.id, &org.kind).await? {
        return Err(AppError::bad_input(
            "org",
            format!("rule {} does not apply to organisations of kind {}", rule.code, org.kind),
        ));
    }
    let reason = body.reason.trim().to_owned();
    let waived =
        rules::waive_for_org(&mut tx, &rule, &org, &reason, Some(user.principal.user_id), user.now, user.today).await?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "rule.waive_org",
            ("rule", rule.code.clone()),
            Some(org.id),
            json!({"org": org.code, "reason": reason, "duties_waived": waived}),
        ),
    )
    .await?;
    tx.commit().await?;
    let out: Value = json!({"rule": rule.code, "org": org.code, "reason": reason, "duties_waived": waived});
    Ok(created(out))
}

//! `/api/v1/orgs/{code}/records` and `/api/v1/records/{id}`: filing, submitting,
//! reviewing, correcting and withdrawing records.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiJson, ApiUser, created, parse_date, parse_id};
use crate::app::App;
use crate::db::records::{self, Actor, Decision, Meeting, NewRecord, RecordText, RecordView};
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new()
        .route("/orgs/{code}/records", post(create_record))
        .route("/records/{id}", get(get_record))
        .route("/records/{id}/submit", post(submit_record))
        .route("/records/{id}/review", post(review_record))
        .route("/records/{id}/versions", post(correct_record))
        .route("/records/{id}/withdraw", post(withdraw_record))
}

fn actor<'a>(app: &App, user: &'a ApiUser) -> Actor<'a> {
    Actor {
        principal: &user.principal,
        tz: app.settings().tz,
        ip: user.ip.as_deref(),
        now: user.now,
        today: user.today,
    }
}

#[derive(Deserialize)]
struct CreateRecord {
    rule: String,
    #[serde(default)]
    person: Option<serde_json::Value>,
    occurred_on: String,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attendees: Vec<String>,
    #[serde(default)]
    meeting: Option<Meeting>,
    #[serde(default)]
    draft: bool,
}

/// A person id as the API gave it out: a string or a number.
fn parse_person(v: Option<serde_json::Value>) -> AppResult<Option<i64>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => {
            s.parse().map(Some).map_err(|_| AppError::bad_input("person", "an id given out by the API"))
        }
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| AppError::bad_input("person", "an id given out by the API"))
        }
        Some(_) => Err(AppError::bad_input("person", "an id given out by the API")),
    }
}

async fn create_record(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<CreateRecord>,
) -> AppResult<impl axum::response::IntoResponse> {
    let occurred_on = parse_date("occurred_on", &body.occurred_on)?;
    let person_id = parse_person(body.person)?;
    let text = RecordText::parse(&body.title, &body.body, body.attendees, body.meeting)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    let rec = records::create(
        &mut tx,
        &actor(&app, &user),
        &org,
        NewRecord { rule_code: body.rule.trim().to_owned(), person_id, occurred_on, text, draft: body.draft },
    )
    .await?;
    tx.commit().await?;
    Ok(created(rec))
}

async fn get_record(State(app): State<App>, user: ApiUser, Path(id): Path<String>) -> AppResult<Json<RecordView>> {
    let id = parse_id("record", &id)?;
    let mut conn = app.pool.acquire().await?;
    Ok(Json(guard::visible_record(&mut conn, &user.principal, id, app.settings().tz).await?))
}

async fn submit_record(State(app): State<App>, user: ApiUser, Path(id): Path<String>) -> AppResult<Json<RecordView>> {
    let id = parse_id("record", &id)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let rec = records::submit(&mut tx, &actor(&app, &user), id).await?;
    tx.commit().await?;
    Ok(Json(rec))
}

#[derive(Deserialize)]
struct Review {
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn review_record(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Review>,
) -> AppResult<Json<RecordView>> {
    let id = parse_id("record", &id)?;
    let decision = match body.decision.as_str() {
        "accept" => Decision::Accept,
        "return" => Decision::Return,
        _ => return Err(AppError::bad_input("decision", "either \"accept\" or \"return\"")),
    };
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let rec = records::review(&mut tx, &actor(&app, &user), id, decision, &body.comment).await?;
    tx.commit().await?;
    Ok(Json(rec))
}

#[derive(Deserialize)]
struct Correction {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attendees: Vec<String>,
    #[serde(default)]
    meeting: Option<Meeting>,
}

async fn correct_record(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Correction>,
) -> AppResult<impl axum::response::IntoResponse> {
    let id = parse_id("record", &id)?;
    let text = RecordText::parse(&body.title, &body.body, body.attendees, body.meeting)?;
    let mut tx = app.pool.begin().await?;
    let rec = records::add_version(&mut tx, &actor(&app, &user), id, text).await?;
    tx.commit().await?;
    Ok(created(rec))
}

#[derive(Deserialize)]
struct Withdrawal {
    #[serde(default)]
    reason: String,
}

async fn withdraw_record(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Withdrawal>,
) -> AppResult<Json<RecordView>> {
    let id = parse_id("record", &id)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let rec = records::withdraw(&mut tx, &actor(&app, &user), id, &body.reason).await?;
    tx.commit().await?;
    Ok(Json(rec))
}

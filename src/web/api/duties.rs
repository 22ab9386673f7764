//! `/api/v1/duties/{id}`: one duty, and waiving it (admins).

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, ApiUser, parse_id};
use crate::app::App;
use crate::db::{audit, duties};
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new().route("/duties/{id}/waive", post(waive_duty))
}

#[derive(Deserialize)]
struct Waive {
    #[serde(default)]
    reason: String,
}

async fn waive_duty(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Waive>,
) -> AppResult<Json<serde_json::Value>> {
    let id = parse_id("duty", &id)?;
    let reason = body.reason.trim();
    let mut tx = app.pool.begin().await?;
    let org_id: i64 = sqlx::query_scalar("select org_id from duty where id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| AppError::not_found("duty"))?;
    let org = guard::visible_org_id(&mut tx, &user.principal, org_id).await?;
    guard::require_admin(&user.principal)?;
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::bad_input("reason", "say in 1–1,000 characters why the duty is waived"));
    }
    duties::waive(&mut tx, id, user.principal.user_id, reason, user.now).await?;
    audit::write(
        &mut tx,
        user.audit_entry("duty.waive", ("duty", id.to_string()), Some(org.id), json!({"reason": reason})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"id": id.to_string(), "status": "waived", "reason": reason})))
}

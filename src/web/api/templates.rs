//! `/api/v1/templates`: the built-in responsibility systems and their installation.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiJson, ApiUser, created, parse_date};
use crate::app::App;
use crate::db::{audit, rules};
use crate::domain::templates;
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new()
        .route("/templates", get(list_templates))
        .route("/templates/{template}/install", post(install_template))
}

#[derive(Serialize)]
struct TemplateView {
    code: &'static str,
    title: &'static str,
    rules: Vec<&'static str>,
}

async fn list_templates(_user: ApiUser) -> Json<Vec<TemplateView>> {
    Json(
        templates::ALL
            .iter()
            .map(|t| TemplateView { code: t.code, title: t.title, rules: t.rules.iter().map(|r| r.code).collect() })
            .collect(),
    )
}

#[derive(Deserialize)]
struct Install {
    effective_from: String,
    #[serde(default)]
    root: Option<String>,
}

async fn install_template(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<Install>,
) -> AppResult<impl axum::response::IntoResponse> {
    guard::require_admin(&user.principal)?;
    let template = templates::find(&code).ok_or_else(|| AppError::not_found(format!("template {code}")))?;
    let effective_from = parse_date("effective_from", &body.effective_from)?;
    // Each started period back to effective_from gets its duties now: keep that bounded.
    if chrono::Datelike::year(&effective_from) < chrono::Datelike::year(&user.today) - 10 {
        return Err(AppError::bad_input("effective_from", "a system takes effect at most ten years back"));
    }
    let settings = app.settings();
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let root = match body.root.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            crate::db::orgs::find_by_code(&mut tx, r)
                .await?
                .ok_or_else(|| AppError::bad_input("root", format!("no organisation has the code {r:?}")))?,
        ),
    };
    let installed = rules::install_template(
        &mut tx,
        &settings,
        template,
        effective_from,
        root.as_ref(),
        Some(user.principal.user_id),
        user.now,
    )
    .await?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "template.install",
            ("template", template.code.to_owned()),
            root.as_ref().map(|r| r.id),
            json!({"effective_from": effective_from, "root": installed.root, "duties": installed.duties_created}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(created(installed))
}

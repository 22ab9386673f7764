//! `/api/v1/users`: accounts (admins only), and who the caller is.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiJson, ApiUser, created};
use crate::app::App;
use crate::db::{audit, users};
use crate::domain::access::Grant;
use crate::error::AppResult;
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new().route("/users", post(create_user)).route("/me", get(me))
}

#[derive(Deserialize)]
struct CreateUser {
    login: String,
    password: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    admin: bool,
}

#[derive(Serialize)]
struct UserView {
    id: String,
    login: String,
    name: String,
    admin: bool,
}

async fn create_user(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<CreateUser>,
) -> AppResult<impl axum::response::IntoResponse> {
    guard::require_admin(&user.principal)?;
    let mut tx = app.pool.begin().await?;
    let created_user = users::create(&mut tx, &body.login, &body.password, &body.name, body.admin, user.now).await?;
    audit::write(
        &mut tx,
        user.audit_entry("user.create", ("user", created_user.login.clone()), None, json!({"admin": body.admin})),
    )
    .await?;
    tx.commit().await?;
    let name = if body.name.trim().is_empty() { created_user.login.clone() } else { body.name.trim().to_owned() };
    Ok(created(UserView {
        id: created_user.id.to_string(),
        login: created_user.login,
        name,
        admin: created_user.is_admin,
    }))
}

#[derive(Serialize)]
struct Me {
    login: String,
    admin: bool,
    roles: Vec<RoleView>,
}

#[derive(Serialize)]
struct RoleView {
    role: String,
    org: String,
}

async fn me(State(app): State<App>, user: ApiUser) -> AppResult<Json<Me>> {
    let mut conn = app.pool.acquire().await?;
    let mut roles = Vec::new();
    for Grant { role, org_path } in &user.principal.grants {
        if let Some(id) = org_path.last()
            && let Some(org) = crate::db::orgs::find_by_id(&mut conn, *id).await?
        {
            roles.push(RoleView { role: role.to_string(), org: org.code });
        }
    }
    Ok(Json(Me { login: user.principal.login.clone(), admin: user.principal.is_admin, roles }))
}

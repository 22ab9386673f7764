//! The JSON API under `/api/v1` (DESIGN.md section 4): bearer tokens, JSON errors, and the
//! OpenAPI document.

mod admin_tree;
mod admin_users;
mod duties;
mod openapi;
mod orgs;
mod records;
mod rules;
mod templates;
mod users;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;

use crate::app::App;

use crate::domain::access::Principal;
use crate::error::AppError;

pub fn router() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .merge(admin_tree::router())
        .merge(admin_users::router())
        .merge(duties::router())
        .merge(orgs::router())
        .merge(records::router())
        .merge(rules::router())
        .merge(templates::router())
        .merge(users::router())
        .fallback(|| async { AppError::not_found("no such API route") })
        .method_not_allowed_fallback(|| async { MethodNotAllowed })
        .layer(axum::middleware::map_response(json_errors))
}

/// 405, as a JSON error.
struct MethodNotAllowed;

impl IntoResponse for MethodNotAllowed {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": "this route does not take that method", "field": null}});
        (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
    }
}

/// Every error the API answers is JSON, also the ones axum's extractors produce (a path
/// that is not UTF-8, a repeated query parameter): those become `{error: {…}}` too.
async fn json_errors(resp: axum::response::Response) -> axum::response::Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (code, field) = match status.as_u16() {
        400 => ("bad_input", Some("request")),
        404 => ("not_found", None),
        405 => ("method_not_allowed", None),
        413 => ("too_large", Some("body")),
        415 => ("bad_input", Some("body")),
        422 => ("bad_input", Some("body")),
        s if s >= 500 => ("internal", None),
        _ => ("error", None),
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let message = status.canonical_reason().unwrap_or("error");
    let body = serde_json::json!({"error": {"code": code, "message": message, "field": field}});
    (status, axum::Json(body)).into_response()
}

/// The caller of an API request, authenticated by `Authorization: Bearer TOKEN`, with the
/// instant the request is judged at.
pub struct ApiUser {
    pub principal: Principal,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub ip: Option<String>,
}

impl ApiUser {
    /// An audit entry for something this caller did on this request.
    pub fn audit_entry<'a>(
        &'a self,
        action: &'a str,
        object: (&'a str, String),
        org_id: Option<i64>,
        detail: serde_json::Value,
    ) -> crate::db::audit::Entry<'a> {
        crate::db::audit::Entry::by(&self.principal, self.now, self.ip.as_deref(), action, object, org_id, detail)
    }
}

impl FromRequestParts<App> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<ApiUser, AppError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or(AppError::Unauthenticated)?;
        let now = app.now();
        let today = app.today_at(now);
        let mut conn = app.pool.acquire().await?;
        let principal =
            crate::db::users::principal_for_token(&mut conn, token, today).await?.ok_or(AppError::Unauthenticated)?;
        crate::web::refusal::identify(&parts.extensions, &principal);
        let ip = crate::web::client_ip(parts);
        Ok(ApiUser { principal, now, today, ip })
    }
}

/// A JSON body, parsed with the path of the offending field on failure (400, never 422).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, app: &App) -> Result<ApiJson<T>, AppError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        if !is_json {
            return Err(AppError::bad_input("body", "send the body as application/json"));
        }
        let bytes = axum::body::Bytes::from_request(req, app).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge("the request body is too large".into())
            } else {
                AppError::bad_input("body", "the request body could not be read")
            }
        })?;
        let bytes = if bytes.is_empty() { axum::body::Bytes::from_static(b"{}") } else { bytes };
        // Parse to a value first: trailing garbage is refused, and a NUL character (which
        // PostgreSQL cannot store) is refused naming its field.
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::bad_input("body", format!("the body is not valid JSON: {}", json_message(&e))))?;
        if let Some(field) = field_with_nul(&value, "") {
            return Err(AppError::bad_input(field, "text may not contain the NUL character"));
        }
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = if path == "." || path == "?" || path.is_empty() {
                missing_field(&inner.to_string()).unwrap_or_else(|| "body".to_owned())
            } else {
                path
            };
            AppError::bad_input(field, json_message(&inner))
        })
    }
}

/// The path of the first string (or key) in a JSON value that holds a NUL character.
fn field_with_nul(v: &serde_json::Value, at: &str) -> Option<String> {
    let here = || if at.is_empty() { "body".to_owned() } else { at.to_owned() };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, x)| field_with_nul(x, &format!("{}[{i}]", here())))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            if k.contains('\0') { Some(path) } else { field_with_nul(x, &path) }
        }),
        _ => None,
    }
}

fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn json_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // Drop serde's "at line 1 column 20": the field says where.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// Parse a `YYYY-MM-DD` date from a JSON field; years run from 1900 to 9999, as periods do.
pub fn parse_date(field: &'static str, s: &str) -> Result<NaiveDate, AppError> {
    use chrono::Datelike;
    let date = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::bad_input(field, "a date is written YYYY-MM-DD, e.g. 2026-03-01"))?;
    let years = crate::domain::period::MIN_YEAR..=crate::domain::period::MAX_YEAR;
    if !years.contains(&date.year()) {
        return Err(AppError::bad_input(field, "the year must be between 1900 and 9999"));
    }
    Ok(date)
}

/// An id from a URL: an unknown or malformed one is simply not found.
pub fn parse_id(what: &'static str, s: &str) -> Result<i64, AppError> {
    s.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| AppError::not_found(what))
}

/// 201 Created with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> impl IntoResponse {
    (StatusCode::CREATED, axum::Json(body))
}

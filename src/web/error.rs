//! How an [`AppError`] reaches a client of the JSON API: `{error: {code, message, field}}`
//! with a fitting status; a fault of ours is logged with its cause chain and shown as a
//! bare "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::AppError;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (message, field) = match &self {
            AppError::BadInput { field, message } => (format!("{field}: {message}"), Some(field.to_string())),
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                ("internal error".to_owned(), None)
            }
            other => (other.to_string(), None),
        };
        let body = json!({"error": {"code": self.code(), "message": message, "field": field}});
        let mut resp = (status, Json(body)).into_response();
        if let AppError::TooManyRequests { retry_after_secs } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        crate::web::refusal::mark(&mut resp, &self);
        resp
    }
}

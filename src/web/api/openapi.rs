//! The OpenAPI document of the JSON API, written by hand beside this file and checked by
//! a test against the router, so that every route is described.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

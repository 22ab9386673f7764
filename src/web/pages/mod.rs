//! The HTML pages: one module per area, each with its own `router()`, merged here behind
//! the session middleware. Handlers render one askama template struct per page.

mod admin;
mod admin_import;
mod admin_rules;
mod admin_tree;
mod admin_users;
mod auth;
mod calendar;
mod notifications;
mod records;
mod subtree;
mod workbench;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::App;
use crate::domain::access::Role;
use crate::error::AppError;
use crate::web::i18n::{Locale, Tr};
use crate::web::session::PageUser;

pub fn router(app: App) -> Router<App> {
    Router::new()
        .merge(auth::router())
        .merge(workbench::router())
        .merge(records::router())
        .merge(subtree::router())
        .merge(calendar::router())
        .merge(notifications::router())
        .merge(admin_rules::router())
        .merge(admin::router())
        .merge(admin_import::router())
        .merge(admin_tree::router())
        .merge(admin_users::router())
        .layer(axum::middleware::from_fn_with_state(app, crate::web::session::load))
}

/// What the layout (base.html) shows around every signed-in page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub user_name: String,
    pub login: String,
    pub csrf: String,
    pub unread: i64,
    pub is_admin: bool,
    pub can_review: bool,
    pub sees_subtree: bool,
    /// The navigation entry to mark as current.
    pub active: &'static str,
    /// The current path and query, for the language switch to come back to.
    pub here: String,
}

impl Layout {
    pub fn new(user: &PageUser, active: &'static str, here: &str) -> Layout {
        let p = &user.principal;
        Layout {
            user_name: user.name.clone(),
            login: p.login.clone(),
            csrf: user.csrf.clone(),
            unread: user.unread,
            is_admin: p.is_admin,
            can_review: p.is_admin || p.grants.iter().any(|g| matches!(g.role, Role::Secretary | Role::Coordinator)),
            sees_subtree: p.is_admin || p.grants.iter().any(|g| g.role != Role::Member),
            active,
            here: here.to_owned(),
        }
    }

    pub fn is(&self, entry: &str) -> bool {
        self.active == entry
    }

    pub fn asset(&self, path: &str) -> String {
        crate::web::assets::url(path)
    }
}

/// Render a page: HTML, never cached.
pub fn render<T: Template>(page: &T) -> Response {
    render_status(StatusCode::OK, page)
}

/// Render a page with a status (422 for a form with errors).
pub fn render_status<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            tracing::error!("rendering a page failed: {e}");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, Locale::Zh)
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: Tr,
    status: u16,
    message: String,
    detail: String,
}

/// A plain error page: no stack trace, no SQL, no paths.
pub fn error_page(status: StatusCode, locale: Locale) -> Response {
    error_page_with(status, locale, String::new())
}

fn error_page_with(status: StatusCode, locale: Locale, detail: String) -> Response {
    let t = Tr::new(locale);
    let key = match status.as_u16() {
        400 => "error.bad_input",
        403 => "error.forbidden",
        404 => "error.not_found",
        409 => "error.conflict",
        413 => "error.too_large",
        429 => "error.too_many",
        503 => "error.unavailable",
        _ => "error.internal",
    };
    let page = ErrorPage { t, status: status.as_u16(), message: t.t(key).to_owned(), detail };
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(_) => (status, "error").into_response(),
    }
}

/// An [`AppError`] met while serving a page, shown as an error page in the user's language.
pub struct PageError(pub AppError, pub Locale);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = match &self.0 {
            AppError::BadInput { message, .. } => message.to_string(),
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error on a page");
                String::new()
            }
            _ => String::new(),
        };
        let mut resp = error_page_with(status, self.1, detail);
        crate::web::refusal::mark(&mut resp, &self.0);
        resp
    }
}

/// Errors from the database layer on a page: `result.page(&user)?`.
pub trait PageResultExt<T> {
    fn page(self, user: &PageUser) -> Result<T, PageError>;
}

impl<T, E: Into<AppError>> PageResultExt<T> for Result<T, E> {
    fn page(self, user: &PageUser) -> Result<T, PageError> {
        self.map_err(|e| PageError(e.into(), user.tr.locale))
    }
}

/// A safe place to go after signing in: a local path, never another site.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.contains(['\r', '\n']) => {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_returns_to_local_paths() {
        assert_eq!(local_path(Some("/records/5?x=1")), "/records/5?x=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}

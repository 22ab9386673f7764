//! The HTTP side: the router, middleware (security headers, limits, tracing), and the
//! server's life cycle. `api/` holds the JSON API.

pub mod api;
pub mod assets;
mod error;
pub mod format;
pub mod guard;
pub mod i18n;
pub mod pages;
pub mod refusal;
pub mod session;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;

/// Largest request body outside uploads.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The whole application's router.
pub fn router(app: App) -> Router {
    let https = app.config.https();
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/static/{*path}", get(assets::serve))
        .nest("/api/v1", api::router())
        .merge(pages::router(app.clone()))
        .layer(axum::middleware::from_fn_with_state(app.clone(), refusal::log))
        .layer(axum::middleware::from_fn_with_state(app.clone(), note_changes))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "internal error")
                .into_response()
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(120)));
    for (name, value) in security_headers(https) {
        r = r.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    r.layer(TraceLayer::new_for_http()).with_state(app)
}

/// Headers every response carries (SECURITY.md rows 14–15).
fn security_headers(https: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
                 connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            ),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        ),
    ];
    if https {
        h.push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains")));
    }
    h
}

/// After a request that may have changed something (any but GET, HEAD and OPTIONS, once
/// its answer is ready, so after it committed), the overview's kept counts serve no more.
async fn note_changes(State(app): State<App>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let response = next.run(req).await;
    if !safe {
        app.counts.changed();
    }
    response
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match sqlx::query("select 1").execute(&app.pool).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// The client's address as the server saw it. `X-Forwarded-For` is not trusted: a client
/// can set it to anything.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(app);
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

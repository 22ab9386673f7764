//! Access refusals are written to the audit log with who, what and when (SECURITY.md
//! row 25), in one place. A handler refuses by returning [`AppError::Forbidden`] (403) or
//! [`AppError::Hidden`] (404 for an object that exists but is out of the caller's reach);
//! turning that error into a response marks the response with [`Refused`], and the
//! [`log`] middleware, around every route, writes the audit row. The session layer marks
//! a refused CSRF check the same way. Who asked comes from the
//! [`Caller`] slot that the session layer (pages) or the bearer-token extractor (API)
//! fills once it knows the user.
//!
//! [`AppError::Forbidden`]: crate::error::AppError::Forbidden
//! [`AppError::Hidden`]: crate::error::AppError::Hidden

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::app::App;
use crate::db::audit;
use crate::domain::access::Principal;

/// The signed-in caller of the current request, once known: `(user id, login)`.
#[derive(Clone, Default)]
pub struct Caller(Arc<OnceLock<(i64, String)>>);

/// A response that refuses access, and why (`forbidden`, `not_visible`).
#[derive(Clone, Copy, Debug)]
pub struct Refused(pub &'static str);

/// Note who the caller is, for the refusal log of this request.
pub fn identify(extensions: &Extensions, principal: &Principal) {
    if let Some(Caller(slot)) = extensions.get::<Caller>() {
        let _ = slot.set((principal.user_id, principal.login.clone()));
    }
}

/// Mark a response as a refusal when the error behind it is one.
pub fn mark(response: &mut Response, error: &crate::error::AppError) {
    if let Some(why) = error.refusal() {
        response.extensions_mut().insert(Refused(why));
    }
}

/// The middleware: run the request, and log it if the answer is a refusal.
pub async fn log(State(app): State<App>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let caller = Caller::default();
    parts.extensions.insert(caller.clone());
    // Kept cheaply (both are reference-counted); described only for a refusal.
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Some(Refused(why)) = response.extensions().get::<Refused>().copied() {
        let what = format!("{method} {}", uri.path().chars().take(200).collect::<String>());
        let who = caller.0.get();
        let ip = peer.map(|p| p.to_string());
        let entry = audit::Entry {
            at: app.now(),
            actor_id: who.map(|w| w.0),
            actor: who.map_or("anonymous", |w| w.1.as_str()),
            action: "auth.refused",
            object_type: "request",
            object_id: what,
            org_id: None,
            detail: json!({"why": why}),
            ip: ip.as_deref(),
        };
        let written = match app.pool.acquire().await {
            Ok(mut conn) => audit::write(&mut conn, entry).await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = written {
            tracing::error!("logging a refusal failed: {e:#}");
        }
    }
    response
}

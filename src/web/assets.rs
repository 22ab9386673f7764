//! Static files (vendored htmx, CSS, icons), embedded in the binary and served with long
//! cache lifetimes under versioned URLs.

use std::sync::OnceLock;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// The URL of a static file, with a version taken from its content so browsers refetch
/// it only when it changes.
pub fn url(path: &str) -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    let v = VERSION.get_or_init(|| {
        let mut all: Vec<String> = Static::iter()
            .filter_map(|f| Static::get(&f).map(|e| hex::encode(&e.metadata.sha256_hash()[..4])))
            .collect();
        all.sort();
        hex::encode(&crate::secret::token_hash(&all.concat())[..6])
    });
    format!("/static/{path}?v={v}")
}

/// `app.css`: every file of `static/css/` in name order, so that each area keeps its own
/// stylesheet and the browser still makes one request.
fn stylesheet() -> &'static [u8] {
    static CSS: OnceLock<Vec<u8>> = OnceLock::new();
    CSS.get_or_init(|| {
        let mut names: Vec<String> =
            Static::iter().filter(|f| f.starts_with("css/") && f.ends_with(".css")).map(|f| f.into_owned()).collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(f) = Static::get(&name) {
                out.extend_from_slice(format!("/* {name} */\n").as_bytes());
                out.extend_from_slice(&f.data);
                out.push(b'\n');
            }
        }
        out
    })
}

pub async fn serve(Path(path): Path<String>, RawQuery(query): RawQuery) -> Response {
    let file = if path == "app.css" {
        Some(std::borrow::Cow::Borrowed(stylesheet()))
    } else {
        Static::get(&path).map(|f| f.data)
    };
    match file {
        Some(data) => {
            let mime = mime_guess::from_path(&path).first_or_octet_stream();
            let content_type = if mime.type_() == "text"
                || mime.essence_str() == "image/svg+xml"
                || mime.essence_str() == "application/javascript"
            {
                format!("{}; charset=utf-8", mime.essence_str())
            } else {
                mime.essence_str().to_owned()
            };
            let mut resp = data.into_owned().into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            // Versioned URLs never change; a bare URL is checked again each time.
            let versioned = query.is_some_and(|q| q.starts_with("v="));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(if versioned { "public, max-age=31536000, immutable" } else { "no-cache" }),
            );
            resp
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

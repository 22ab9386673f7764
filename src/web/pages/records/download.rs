//! Attachment downloads: streamed from the file store to those who may see the record,
//! with the stored media type (from the file's bytes), `nosniff`, and a
//! `Content-Disposition` that carries the display name safely (RFC 6266 / RFC 5987).
//! Images may be shown inline on the record page; everything else is a download.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::files;
use super::{file_store, parse_id};
use crate::app::App;
use crate::db::attachments;
use crate::error::AppError;
use crate::web::guard;
use crate::web::pages::{PageError, PageResultExt};
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new().route("/attachments/{id}", get(download_attachment))
}

#[derive(Deserialize)]
struct DownloadQuery {
    inline: Option<String>,
}

async fn download_attachment(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, PageError> {
    let not_found = || PageError(AppError::not_found("attachment"), user.tr.locale);
    let id = parse_id(&id).ok_or_else(not_found)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let a = attachments::find(&mut conn, id).await.page(&user)?.ok_or_else(not_found)?;
    // Whoever cannot see the record cannot learn that the file exists.
    guard::visible_record(&mut conn, &user.principal, a.record_id, app.settings().tz).await.page(&user)?;
    drop(conn);
    if a.removed_at.is_some() {
        return Err(not_found());
    }
    let file = match file_store(&app).open(&a.sha256).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(attachment = a.id, "a stored file is missing: {e}");
            return Err(not_found());
        }
    };
    let inline = q.inline.as_deref() == Some("1") && files::is_image(&a.media_type);
    let media = if files::ACCEPTED.contains(&a.media_type.as_str()) {
        a.media_type.as_str()
    } else {
        "application/octet-stream"
    };
    let mut resp = Body::from_stream(chunks(file)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size.max(0) as u64));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox",
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(inline, &a.file_name, &a.media_type)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((StatusCode::OK, resp).into_response())
}

/// A file as a stream of 64 KiB chunks, ending at the first error.
fn chunks(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266, RFC 5987):
/// old clients read the ASCII fallback, every current one the UTF-8 name.
pub fn content_disposition(inline: bool, name: &str, media_type: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let mut fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';' | ',') || c == ' ' { c } else { '_' })
        .collect();
    // A name with nothing readable in ASCII falls back to "attachment.<its extension>".
    let (stem, ext) = match fallback.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && !ext.contains('_') => (stem.to_owned(), ext.to_owned()),
        _ => (fallback.clone(), files::extension(media_type).to_owned()),
    };
    if stem.trim_matches(['_', ' ', '.']).is_empty() {
        fallback = format!("attachment.{ext}");
    }
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'#'
            | b'$'
            | b'&'
            | b'+'
            | b'^'
            | b'`'
            | b'|' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_travel_safely_in_the_header() {
        assert_eq!(
            content_disposition(false, "会议记录.pdf", files::PDF),
            "attachment; filename=\"attachment.pdf\"; filename*=UTF-8''%E4%BC%9A%E8%AE%AE%E8%AE%B0%E5%BD%95.pdf"
        );
        let d = content_disposition(false, "a\"b;c\\d.pdf", files::PDF);
        assert!(d.starts_with("attachment; filename=\"a_b_c_d.pdf\"; filename*=UTF-8''a%22b%3Bc%5Cd.pdf"), "{d}");
        assert!(content_disposition(true, "图.png", files::PNG).starts_with("inline; filename=\"attachment.png\""));
        assert!(
            content_disposition(false, "会议_v2.docx", files::DOCX).starts_with("attachment; filename=\"___v2.docx\"")
        );
        assert!(content_disposition(false, "说明", files::PDF).starts_with("attachment; filename=\"attachment.pdf\""));
        assert!(HeaderValue::from_str(&content_disposition(false, "x\u{7f}y", files::PDF)).is_ok());
    }
}

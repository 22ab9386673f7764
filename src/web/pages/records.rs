//! Records on the pages: the record form with attachments (`form`), the record page with
//! its history and the actions on it (`show`), the duty page (`duty`), the superior's
//! review queue (`review`) and attachment downloads (`download`).

// Until `pub mod files;` stands in src/lib.rs, the file store is compiled here.
use crate::files;

mod download;
mod duty;
mod form;
mod review;
mod show;

use axum::Router;

use crate::app::App;
use crate::db::records::Actor;
use crate::web::i18n::Tr;
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new()
        .merge(form::router())
        .merge(show::router())
        .merge(duty::router())
        .merge(review::router())
        .merge(download::router())
}

/// The acting user as the database layer wants them.
fn actor<'a>(app: &App, user: &'a PageUser) -> Actor<'a> {
    Actor {
        principal: &user.principal,
        tz: app.settings().tz,
        ip: user.ip.as_deref(),
        now: user.now,
        today: user.today,
    }
}

/// The file store of this deployment.
fn file_store(app: &App) -> files::FileStore {
    files::FileStore::new(app.config.files_dir())
}

/// An id from a URL; anything else is simply not found.
fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|id| *id > 0)
}

/// A record's state in words: 草稿, 待审核, 已通过, 已退回, 已撤回.
fn state_label(t: &Tr, state: &str) -> &'static str {
    match state {
        "draft" => t.t("records.state_draft"),
        "submitted" => t.t("records.state_submitted"),
        "accepted" => t.t("records.state_accepted"),
        "returned" => t.t("records.state_returned"),
        "withdrawn" => t.t("records.state_withdrawn"),
        _ => t.t("records.state_unknown"),
    }
}

/// Whether a rule's records are meeting-like events (date, place, host, attendance).
fn is_meeting_like(record_kind: &str) -> bool {
    matches!(record_kind, "meeting" | "briefing" | "inspection" | "visit")
}

/// A size as people read it: 820 KB, 3.4 MB.
fn size_label(bytes: i64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    let b = bytes.max(0) as f64;
    if b >= MB {
        let mb = b / MB;
        if mb >= 10.0 || (mb - mb.round()).abs() < 0.05 { format!("{} MB", mb.round()) } else { format!("{mb:.1} MB") }
    } else {
        format!("{} KB", (b / 1024.0).ceil().max(1.0))
    }
}

/// What kind of file a stored media type is, in words.
fn kind_label(t: &Tr, media_type: &str) -> &'static str {
    match media_type {
        files::PDF => "PDF",
        files::DOCX | files::DOC => t.t("records.kind_word"),
        files::XLSX | files::XLS => t.t("records.kind_excel"),
        files::PPTX | files::PPT => t.t("records.kind_ppt"),
        files::OFD => "OFD",
        m if files::is_image(m) => t.t("records.kind_image"),
        _ => t.t("records.kind_text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(0), "1 KB");
        assert_eq!(size_label(1500), "2 KB");
        assert_eq!(size_label(20 * 1024 * 1024), "20 MB");
        assert_eq!(size_label(3_565_158), "3.4 MB");
    }
}

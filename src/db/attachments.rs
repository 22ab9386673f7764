//! Attachments: the files of a record. The bytes live once in the content-addressed store
//! (`crate::files`); a row here links a stored file to a record under the name its owner
//! gave it. Adding and removing write the record's audit history in the same transaction;
//! a removed attachment keeps its row (and the file stays on disk).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use super::audit;
use super::records::{Actor, RecordView};
use crate::error::{AppError, AppResult};

/// The most files one record may carry.
pub const MAX_PER_RECORD: i64 = 50;

/// An attachment as pages show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attachment {
    pub id: i64,
    pub record_id: i64,
    pub sha256: String,
    pub size: i64,
    pub media_type: String,
    pub file_name: String,
    /// The uploader's login.
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// A stored file to link to a record, its name already made safe for display.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub sha256: String,
    pub size: i64,
    pub media_type: String,
    pub file_name: String,
}

pub async fn find(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Attachment>> {
    sqlx::query_as(
        "select a.id, a.record_id, a.sha256, a.size, a.media_type, a.file_name, u.login as uploaded_by, a.created_at,
                a.removed_at
         from attachment a join app_user u on u.id = a.uploaded_by where a.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A record's attachments that were not removed, in the order they were added.
pub async fn for_record(conn: &mut PgConnection, record_id: i64) -> sqlx::Result<Vec<Attachment>> {
    sqlx::query_as(
        "select a.id, a.record_id, a.sha256, a.size, a.media_type, a.file_name, u.login as uploaded_by, a.created_at,
                a.removed_at
         from attachment a join app_user u on u.id = a.uploaded_by
         where a.record_id = $1 and a.removed_at is null
         order by a.id limit 200",
    )
    .bind(record_id)
    .fetch_all(conn)
    .await
}

/// Only those who file the record's organisation's records change its files (else 403;
/// 404 when they cannot even see it).
fn check_filer(actor: &Actor<'_>, rec: &RecordView) -> AppResult<()> {
    if !actor.principal.can_see(&rec.org_path) {
        return Err(AppError::not_found("record"));
    }
    if !actor.principal.can_submit(&rec.org_path, rec.person_id) {
        return Err(AppError::forbidden("you may not file records for this organisation"));
    }
    Ok(())
}

/// Link a stored file to a record (any state but withdrawn).
pub async fn add(conn: &mut PgConnection, actor: &Actor<'_>, rec: &RecordView, new: &NewAttachment) -> AppResult<i64> {
    check_filer(actor, rec)?;
    let id: i64 = rec.id.parse().map_err(|_| AppError::not_found("record"))?;
    let state: Option<String> = sqlx::query_scalar("select state from record where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match state.as_deref() {
        None => return Err(AppError::not_found("record")),
        Some("withdrawn") => return Err(AppError::conflict("a withdrawn record takes no more files")),
        Some(_) => {}
    }
    let count: i64 = sqlx::query_scalar("select count(*) from attachment where record_id = $1 and removed_at is null")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    if count >= MAX_PER_RECORD {
        return Err(AppError::bad_input("attachments", format!("a record has at most {MAX_PER_RECORD} files")));
    }
    let attachment_id: i64 = sqlx::query_scalar(
        "insert into attachment (record_id, sha256, size, media_type, file_name, uploaded_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7) returning id",
    )
    .bind(id)
    .bind(&new.sha256)
    .bind(new.size)
    .bind(&new.media_type)
    .bind(&new.file_name)
    .bind(actor.principal.user_id)
    .bind(actor.now)
    .fetch_one(&mut *conn)
    .await?;
    write_audit(
        conn,
        actor,
        "record.attach",
        rec,
        json!({
            "attachment": attachment_id.to_string(), "file_name": new.file_name, "size": new.size,
            "media_type": new.media_type, "sha256": new.sha256,
        }),
    )
    .await?;
    Ok(attachment_id)
}

/// Remove a file from a draft or a returned record; what was submitted stays.
pub async fn remove(conn: &mut PgConnection, actor: &Actor<'_>, rec: &RecordView, attachment_id: i64) -> AppResult<()> {
    check_filer(actor, rec)?;
    let id: i64 = rec.id.parse().map_err(|_| AppError::not_found("record"))?;
    let state: Option<String> = sqlx::query_scalar("select state from record where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if !matches!(state.as_deref(), Some("draft" | "returned")) {
        return Err(AppError::conflict("files are removed only from drafts and returned records"));
    }
    let name: Option<String> = sqlx::query_scalar(
        "update attachment set removed_at = $3, removed_by = $4
         where id = $1 and record_id = $2 and removed_at is null returning file_name",
    )
    .bind(attachment_id)
    .bind(id)
    .bind(actor.now)
    .bind(actor.principal.user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(name) = name else { return Err(AppError::not_found("attachment")) };
    write_audit(conn, actor, "record.detach", rec, json!({"attachment": attachment_id.to_string(), "file_name": name}))
        .await?;
    Ok(())
}

async fn write_audit(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    action: &str,
    rec: &RecordView,
    detail: serde_json::Value,
) -> AppResult<()> {
    audit::write(
        conn,
        audit::Entry::by(
            actor.principal,
            actor.now,
            actor.ip,
            action,
            ("record", rec.id.clone()),
            Some(rec.org_id),
            detail,
        ),
    )
    .await?;
    Ok(())
}

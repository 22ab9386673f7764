//! The one place where requests meet the access rules of DESIGN.md section 3: every page
//! and API handler loads the objects it touches through these functions, which answer 404
//! for what the caller cannot see and 403 for what they see but may not do.

use sqlx::PgConnection;

use crate::db::orgs::{self, Org};
use crate::db::records::{self, RecordView};
use crate::domain::access::Principal;
use crate::error::{AppError, AppResult};

/// An organisation the caller can see, by code.
pub async fn visible_org(conn: &mut PgConnection, who: &Principal, code: &str) -> AppResult<Org> {
    match orgs::find_by_code(conn, code).await? {
        Some(org) if who.can_see(&org.path) => Ok(org),
        Some(_) => Err(AppError::hidden(format!("organisation {code}"))),
        None => Err(AppError::not_found(format!("organisation {code}"))),
    }
}

/// An organisation the caller can see, by id.
pub async fn visible_org_id(conn: &mut PgConnection, who: &Principal, id: i64) -> AppResult<Org> {
    match orgs::find_by_id(conn, id).await? {
        Some(org) if who.can_see(&org.path) => Ok(org),
        Some(_) => Err(AppError::hidden("organisation")),
        None => Err(AppError::not_found("organisation")),
    }
}

/// A record the caller can see (its organisation is visible, or they review it).
pub async fn visible_record(
    conn: &mut PgConnection,
    who: &Principal,
    id: i64,
    tz: chrono_tz::Tz,
) -> AppResult<RecordView> {
    match records::find(conn, id, tz).await? {
        Some(r) if who.can_see(&r.org_path) || who.can_review(&r.org_path) => Ok(r),
        Some(_) => Err(AppError::hidden("record")),
        None => Err(AppError::not_found("record")),
    }
}

/// Configuration is for admins.
pub fn require_admin(who: &Principal) -> AppResult<()> {
    if who.can_configure() { Ok(()) } else { Err(AppError::forbidden("only an administrator may do this")) }
}

/// An organisation whose whole subtree the caller sees (an admin, or a secretary,
/// coordinator or inspector of it or of an ancestor), by code: the subtree overview.
/// A leadership member sees only their own organisation, so not its subtree: 404.
pub async fn visible_subtree(conn: &mut PgConnection, who: &Principal, code: &str) -> AppResult<Org> {
    match orgs::find_by_code(conn, code).await? {
        Some(org) if who.can_see(&org.path) && sees_subtree(who, &org.path) => Ok(org),
        Some(_) => Err(AppError::hidden(format!("organisation {code}"))),
        None => Err(AppError::not_found(format!("organisation {code}"))),
    }
}

/// Whether the caller sees the whole subtree of the organisation at `path`.
pub fn sees_subtree(who: &Principal, path: &[i64]) -> bool {
    who.is_admin
        || who.grants.iter().any(|g| g.role != crate::domain::access::Role::Member && path.starts_with(&g.org_path))
}

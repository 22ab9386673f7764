//! What pages show of a rule version besides the duty itself — its rule's code, system
//! and place there, the record kind, the version's title, clause and review flag — kept
//! in memory once read.
//!
//! Those columns never change once written (migration 0011 refuses an update that would
//! change them, and any delete): new wording is a new version, with a new id. So a kept
//! entry is never stale, nothing needs telling when a rule is added (its versions are
//! simply not kept yet), and several servers each keep their own copy safely. Duties are
//! read without joining `rule` and `rule_version` for them (`duties::for_org_period`,
//! `duties::for_orgs_year`): on the workbench that join was a fifth of its query's time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgConnection;

/// The unchanging part of one rule version, with its rule's.
#[derive(Debug, sqlx::FromRow)]
pub struct VersionInfo {
    pub id: i64,
    pub rule_code: String,
    pub system_id: i64,
    pub position: i32,
    pub record_kind: String,
    pub title: String,
    pub clause: String,
    pub needs_review: bool,
}

/// Rule versions read so far, by id. Holds one entry per version ever read: a few
/// hundred for a large installation's rules, so it is not bounded.
#[derive(Default)]
pub struct RuleCatalog {
    versions: RwLock<HashMap<i64, Arc<VersionInfo>>>,
}

impl RuleCatalog {
    /// The versions of these ids that exist, reading from the database only those not
    /// kept yet.
    pub async fn versions(
        &self,
        conn: &mut PgConnection,
        ids: impl IntoIterator<Item = i64>,
    ) -> sqlx::Result<HashMap<i64, Arc<VersionInfo>>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let kept = self.versions.read().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                if found.contains_key(&id) || missing.contains(&id) {
                    continue;
                }
                match kept.get(&id) {
                    Some(v) => {
                        found.insert(id, v.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let rows: Vec<VersionInfo> = sqlx::query_as(
            "select v.id, r.code as rule_code, r.system_id, r.position, r.record_kind, v.title, v.clause,
                    v.needs_review
             from rule_version v join rule r on r.id = v.rule_id
             where v.id = any($1)",
        )
        .bind(&missing)
        .fetch_all(conn)
        .await?;
        let mut kept = self.versions.write().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            let v = Arc::new(row);
            kept.insert(v.id, v.clone());
            found.insert(v.id, v);
        }
        Ok(found)
    }
}

//! The append-only audit log. Entries are written inside the transaction of the change
//! they describe; [`seal`] later chains committed entries with SHA-256 in the order it
//! finds them, so concurrent writers never queue on one row. [`verify`] walks the chain.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::locks;
use crate::domain::access::Principal;

/// One audit entry, before it is written.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    /// The actor as a person reads it: a login, or `system`/`cli`.
    pub actor: &'a str,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: String,
    pub org_id: Option<i64>,
    pub detail: Value,
    pub ip: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// An entry for what a signed-in user (`principal`) did at `at`, from `ip`.
    pub fn by(
        principal: &'a Principal,
        at: DateTime<Utc>,
        ip: Option<&'a str>,
        action: &'a str,
        object: (&'a str, String),
        org_id: Option<i64>,
        detail: Value,
    ) -> Entry<'a> {
        Entry {
            at,
            actor_id: Some(principal.user_id),
            actor: &principal.login,
            action,
            object_type: object.0,
            object_id: object.1,
            org_id,
            detail,
            ip,
        }
    }
}

/// Append an entry in the caller's transaction.
pub async fn write(conn: &mut PgConnection, e: Entry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "insert into audit_log (at, actor_id, actor, action, object_type, object_id, org_id, detail, ip)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at)
    .bind(e.actor_id)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.object_type)
    .bind(&e.object_id)
    .bind(e.org_id)
    .bind(&e.detail)
    .bind(e.ip)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: DateTime<Utc>,
    actor_id: Option<i64>,
    actor: String,
    action: String,
    object_type: String,
    object_id: String,
    org_id: Option<i64>,
    detail: String,
    ip: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    row: Row,
    seal_no: i64,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

/// The hash of an entry: SHA-256 over the previous hash and the entry's fields, each
/// length-prefixed so that no two different entries hash alike.
fn entry_hash(prev: &[u8], seal_no: i64, r: &Row) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    let fields: [String; 11] = [
        seal_no.to_string(),
        r.id.to_string(),
        r.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        r.actor_id.map(|v| v.to_string()).unwrap_or_default(),
        r.actor.clone(),
        r.action.clone(),
        r.object_type.clone(),
        r.object_id.clone(),
        r.org_id.map(|v| v.to_string()).unwrap_or_default(),
        r.detail.clone(),
        r.ip.clone().unwrap_or_default(),
    ];
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().to_vec()
}

/// Seal committed, unsealed entries into the chain, up to `batch` at a time, until none
/// are left. Returns how many were sealed. Safe to run in several processes at once.
pub async fn seal(pool: &PgPool, batch: i64) -> sqlx::Result<u64> {
    let mut sealed = 0;
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)").bind(locks::AUDIT_SEAL).execute(&mut *tx).await?;
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "select seal_no, hash from audit_log where seal_no is not null order by seal_no desc limit 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let rows: Vec<Row> = sqlx::query_as(
            "select id, at, actor_id, actor, action, object_type, object_id, org_id, detail::text as detail, ip
             from audit_log where seal_no is null order by id limit $1",
        )
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(sealed);
        }
        let (mut seal_no, mut prev) = last.unwrap_or((0, Vec::new()));
        let mut ids = Vec::with_capacity(rows.len());
        let mut nos = Vec::with_capacity(rows.len());
        let mut prevs = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        for r in &rows {
            seal_no += 1;
            let hash = entry_hash(&prev, seal_no, r);
            ids.push(r.id);
            nos.push(seal_no);
            prevs.push(prev.clone());
            prev = hash.clone();
            hashes.push(hash);
        }
        sqlx::query(
            "update audit_log a set seal_no = s.no, prev_hash = s.prev, hash = s.hash
             from unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) as s(id, no, prev, hash)
             where a.id = s.id",
        )
        .bind(&ids)
        .bind(&nos)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update audit_head set seal_no = $1, hash = $2")
            .bind(seal_no)
            .bind(&prev)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        sealed += rows.len() as u64;
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub sealed: u64,
    pub unsealed: u64,
    /// The first problem, if the chain is broken: a human-readable sentence.
    pub problem: Option<String>,
}

/// Walk the whole chain in seal order and recompute every hash.
pub async fn verify(pool: &PgPool) -> sqlx::Result<Verification> {
    let mut conn = pool.acquire().await?;
    let mut expected_no = 0i64;
    let mut prev: Vec<u8> = Vec::new();
    let mut after = 0i64;
    loop {
        let rows: Vec<SealedRow> = sqlx::query_as(
            "select id, at, actor_id, actor, action, object_type, object_id, org_id, detail::text as detail, ip,
                    seal_no, prev_hash, hash
             from audit_log where seal_no > $1 order by seal_no limit 5000",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        for SealedRow { row, seal_no: no, prev_hash: stored_prev, hash: stored_hash } in rows {
            expected_no += 1;
            if no != expected_no {
                return broken(
                    expected_no - 1,
                    format!("entry {expected_no} of the chain is missing (next found: {no})"),
                    &mut conn,
                )
                .await;
            }
            if stored_prev.as_deref() != Some(&prev[..]) {
                return broken(
                    expected_no - 1,
                    format!("entry {no} (id {}) does not follow entry {}", row.id, no - 1),
                    &mut conn,
                )
                .await;
            }
            let hash = entry_hash(&prev, no, &row);
            if stored_hash.as_deref() != Some(&hash[..]) {
                return broken(
                    expected_no - 1,
                    format!("entry {no} (id {}) was changed after it was sealed", row.id),
                    &mut conn,
                )
                .await;
            }
            prev = hash;
            after = no;
        }
    }
    let head: (i64, Option<Vec<u8>>) =
        sqlx::query_as("select seal_no, hash from audit_head").fetch_one(&mut *conn).await?;
    if head.0 != expected_no || (expected_no > 0 && head.1.as_deref() != Some(&prev[..])) {
        let problem =
            format!("the chain ends at entry {expected_no} but the seal head says {}: entries were removed", head.0);
        return broken(expected_no, problem, &mut conn).await;
    }
    let unsealed: i64 =
        sqlx::query_scalar("select count(*) from audit_log where seal_no is null").fetch_one(&mut *conn).await?;
    Ok(Verification { sealed: expected_no as u64, unsealed: unsealed as u64, problem: None })
}

async fn broken(sealed_ok: i64, problem: String, conn: &mut PgConnection) -> sqlx::Result<Verification> {
    let unsealed: i64 =
        sqlx::query_scalar("select count(*) from audit_log where seal_no is null").fetch_one(conn).await?;
    Ok(Verification { sealed: sealed_ok as u64, unsealed: unsealed as u64, problem: Some(problem) })
}

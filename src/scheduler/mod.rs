//! The scheduler: one pass ("tick") catches up on every owed duty, fires the `due_soon`
//! and `overdue` notifications that are due, and seals the audit log. Every step is
//! set-based SQL in bounded batches, and safe when several processes tick at once:
//! materialization runs under an advisory lock, each sweep under another, and the unique
//! key on (duty, kind) makes a second event for a duty impossible.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::app::App;
use crate::db::{audit, notifications, settings::Settings};
use crate::domain::time::local_date;

/// Duties notified per statement.
const SWEEP_BATCH: i64 = 5_000;
/// Advisory lock held by the process sweeping notifications.
const SWEEP_LOCK: i64 = 0x7a72_7a00_0003;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub rule_periods: usize,
    pub duties_created: u64,
    pub due_soon_events: u64,
    pub overdue_events: u64,
    pub audit_sealed: u64,
    /// Another process was sweeping; this pass left the notifications to it.
    pub sweep_skipped: bool,
}

/// One scheduler pass at `now`.
pub async fn tick(app: &App, now: DateTime<Utc>) -> anyhow::Result<TickReport> {
    let settings = app.settings();
    let pool = &app.pool;
    let mut report = TickReport::default();
    let m = app.materialize(now).await?;
    report.rule_periods = m.rule_periods;
    report.duties_created = m.duties;
    match sweep(pool, &settings, now).await? {
        Some((soon, overdue)) => {
            report.due_soon_events = soon;
            report.overdue_events = overdue;
        }
        None => report.sweep_skipped = true,
    }
    report.audit_sealed = audit::seal(pool, 1000).await?;
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct Threshold {
    rule_id: i64,
    period_key: String,
    due_soon_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    due_soon_swept: bool,
    overdue_swept: bool,
}

/// Fire the notifications of every rule period whose reminder window opened or whose
/// deadline passed and that was not swept yet. Idle passes read only `rule_period`.
/// Returns `None` when another process holds the sweep.
async fn sweep(pool: &PgPool, settings: &Settings, now: DateTime<Utc>) -> anyhow::Result<Option<(u64, u64)>> {
    let mut conn = pool.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("select pg_try_advisory_lock($1)").bind(SWEEP_LOCK).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(None);
    }
    let result = sweep_locked(&mut conn, settings, now).await;
    if sqlx::query("select pg_advisory_unlock($1)").bind(SWEEP_LOCK).execute(&mut *conn).await.is_err() {
        conn.detach();
    }
    result.map(Some)
}

async fn sweep_locked(
    conn: &mut sqlx::PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<(u64, u64)> {
    let today = local_date(settings.tz, now);
    let due: Vec<Threshold> = sqlx::query_as(
        "select rule_id, period_key, due_soon_at, due_at,
                due_soon_swept_at is not null as due_soon_swept, overdue_swept_at is not null as overdue_swept
         from rule_period
         where materialized_at is not null
           and ((due_soon_swept_at is null and due_soon_at <= $1) or (overdue_swept_at is null and due_at <= $1))
         order by due_soon_at, rule_id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let (mut soon_total, mut overdue_total) = (0, 0);
    for t in due {
        if !t.due_soon_swept {
            // A window already closed fires no reminder: the overdue event says more.
            if now < t.due_at {
                soon_total += sweep_one(conn, &t, "due_soon", t.due_soon_at, now, today).await?;
            }
            mark_swept(conn, &t, "due_soon", now).await?;
        }
        if !t.overdue_swept && t.due_at <= now {
            overdue_total += sweep_one(conn, &t, "overdue", t.due_at, now, today).await?;
            mark_swept(conn, &t, "overdue", now).await?;
        }
    }
    if soon_total + overdue_total > 0 {
        tracing::info!(due_soon = soon_total, overdue = overdue_total, "notifications fired");
    }
    Ok((soon_total, overdue_total))
}

/// Fire `kind` for every pending duty of one rule period that existed before the
/// threshold and has not been told, a batch per transaction, in id order.
async fn sweep_one(
    conn: &mut sqlx::PgConnection,
    t: &Threshold,
    kind: &str,
    threshold: DateTime<Utc>,
    now: DateTime<Utc>,
    today: chrono::NaiveDate,
) -> anyhow::Result<u64> {
    let mut after = 0i64;
    let mut fired = 0;
    loop {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "select d.id from duty d
             where d.rule_id = $1 and d.period_key = $2 and d.id > $3 and d.class = 'pending' and d.created_at < $4
               and not exists (select 1 from notification_event e where e.duty_id = d.id and e.kind = $5)
             order by d.id limit $6",
        )
        .bind(t.rule_id)
        .bind(&t.period_key)
        .bind(after)
        .bind(threshold)
        .bind(kind)
        .bind(SWEEP_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = ids.last().copied() else {
            tx.commit().await?;
            return Ok(fired);
        };
        fired += notifications::fire(&mut tx, &ids, kind, now, today).await?;
        tx.commit().await?;
        after = last;
    }
}

async fn mark_swept(conn: &mut sqlx::PgConnection, t: &Threshold, kind: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    let sql = if kind == "due_soon" {
        "update rule_period set due_soon_swept_at = $3 where rule_id = $1 and period_key = $2 and due_soon_swept_at is null"
    } else {
        "update rule_period set overdue_swept_at = $3 where rule_id = $1 and period_key = $2 and overdue_swept_at is null"
    };
    sqlx::query(sql).bind(t.rule_id).bind(&t.period_key).bind(now).execute(conn).await?;
    Ok(())
}

/// Run a pass every `interval` until `stop` fires. Errors are logged, never fatal.
pub async fn run(app: App, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = app.now();
        if let Err(e) = app.reload_settings().await {
            tracing::warn!("reloading settings failed: {e:#}");
        }
        match tick(&app, now).await {
            Ok(r) => tracing::debug!(?r, "scheduler pass"),
            Err(e) => tracing::error!("scheduler pass failed: {e:#}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

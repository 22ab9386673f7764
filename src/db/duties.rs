//! Duties: creating what is owed (materialization), keeping each duty's counts in step
//! with its records, reading them with their status at an instant, and rolling them up
//! over a subtree.
//!
//! Every owed duty of every period that has started exists whenever anyone reads it:
//! changes that alter liability (a new organisation, a role, a template) create their
//! duties in their own transaction, and the passage of time into a new period is caught
//! by `App::ensure_duties`, which every reader calls and which does the work once,
//! under an advisory lock, whoever gets there first (a reader or the scheduler).

use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::catalog::{RuleCatalog, VersionInfo};
use super::locks;
use super::settings::Settings;
use crate::domain::period::{Cadence, Period};
use crate::domain::status::{Settled, Status, status_at};
use crate::domain::time::{Deadlines, deadlines, local_date, local_midnight};
use crate::error::AppResult;

/// Organisations per insert statement when a whole rule period is materialized.
const ORG_CHUNK: i64 = 100_000;

/// One rule period that has started and has no duties yet.
#[derive(Debug, Clone)]
struct PlannedPeriod {
    rule_id: i64,
    /// Whether the rule binds each leadership member (one duty per member) rather than
    /// the organisation.
    each_member: bool,
    period: Period,
    version_id: i64,
    required: i32,
    deadlines: Deadlines,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    rule_id: i64,
    cadence: String,
    binds: String,
    version_id: i64,
    effective_from: NaiveDate,
    retired: bool,
    min_count: i32,
    grace_days: i32,
    lead_days: Option<i32>,
}

/// Every (rule, period) that has started by `now`, back to each rule's first version,
/// whose duties do not exist yet; `only_rules` narrows it to some rules.
async fn plan(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
    only_rules: Option<&[i64]>,
) -> sqlx::Result<Vec<PlannedPeriod>> {
    let versions: Vec<VersionRow> = sqlx::query_as(
        "select r.id as rule_id, r.cadence, r.binds, v.id as version_id, v.effective_from, v.retired, v.min_count,
                v.grace_days, v.lead_days
         from rule r join rule_version v on v.rule_id = r.id
         where $1::bigint[] is null or r.id = any($1)
         order by r.id, v.effective_from",
    )
    .bind(only_rules)
    .fetch_all(&mut *conn)
    .await?;
    let done: HashSet<(i64, String)> = sqlx::query_as::<_, (i64, String)>(
        "select rule_id, period_key from rule_period
         where materialized_at is not null and ($1::bigint[] is null or rule_id = any($1))",
    )
    .bind(only_rules)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();

    let today = local_date(settings.tz, now);
    let mut by_rule: Vec<(i64, Cadence, Vec<&VersionRow>)> = Vec::new();
    for v in &versions {
        let cadence: Cadence = v.cadence.parse().map_err(|_| sqlx::Error::Decode("unknown cadence".into()))?;
        match by_rule.last_mut() {
            Some((id, _, vs)) if *id == v.rule_id => vs.push(v),
            _ => by_rule.push((v.rule_id, cadence, vec![v])),
        }
    }
    let mut planned = Vec::new();
    for (rule_id, cadence, vs) in by_rule {
        let first_effective = vs[0].effective_from;
        let mut first = Period::containing(cadence, first_effective);
        if first.first_day() < first_effective {
            first = first.next();
        }
        let current = Period::containing(cadence, today);
        for period in first.through(current) {
            if done.contains(&(rule_id, period.to_string())) {
                continue;
            }
            let day = period.first_day();
            let Some(v) = vs.iter().rev().find(|v| v.effective_from <= day) else { continue };
            if v.retired {
                continue;
            }
            let lead = v.lead_days.map_or(settings.lead_days.of(cadence), |d| d.max(0) as u32);
            planned.push(PlannedPeriod {
                rule_id,
                each_member: v.binds == "each_member",
                period,
                version_id: v.version_id,
                required: v.min_count,
                deadlines: deadlines(settings.tz, period, v.grace_days.max(0) as u32, lead),
            });
        }
    }
    planned.sort_by_key(|p| (p.period.first_day(), p.rule_id));
    Ok(planned)
}

/// Create the rule period and all its owed duties, in org-id chunks, then count the
/// records that already exist for them. Runs in the caller's transaction.
async fn materialize_period(conn: &mut PgConnection, p: &PlannedPeriod, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let key = p.period.to_string();
    sqlx::query(
        "insert into rule_period (rule_id, period_key, period_start, period_end, version_id, required, due_at, due_soon_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (rule_id, period_key) do update
           set version_id = excluded.version_id, required = excluded.required,
               due_at = excluded.due_at, due_soon_at = excluded.due_soon_at
           where rule_period.materialized_at is null",
    )
    .bind(p.rule_id)
    .bind(&key)
    .bind(p.period.first_day())
    .bind(p.period.end())
    .bind(p.version_id)
    .bind(p.required)
    .bind(p.deadlines.due_at)
    .bind(p.deadlines.due_soon_at)
    .execute(&mut *conn)
    .await?;
    // Duties made earlier by the change that made them owed (rare: a first pass over a
    // period finds none) need their records counted after the insert below.
    let existed: bool = sqlx::query_scalar("select exists (select 1 from duty where rule_id = $1 and period_key = $2)")
        .bind(p.rule_id)
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?;
    let (lo, hi): (Option<i64>, Option<i64>) =
        sqlx::query_as("select min(id), max(id) from org").fetch_one(&mut *conn).await?;
    // Into a period with no duties yet every owed duty goes in as it is: no conflict check
    // per row (a tenth of the insert's cost). A member who holds two overlapping terms is
    // owed one duty: such duplicates are dropped in the select.
    let (dedupe, on_conflict) = match (existed, p.each_member) {
        (true, _) => ("", "on conflict do nothing"),
        (false, true) => ("distinct on (o.org_id, o.person_id)", ""),
        (false, false) => ("", ""),
    };
    let insert = format!(
        "insert into duty (org_id, rule_id, person_id, period_key, required, due_at, cancelled, created_at,
                           waived_at, waived_by, waived_reason, accepted, pending, nth_accepted_at)
         select {dedupe} o.org_id, o.rule_id, o.person_id, o.period_key, o.required, o.due_at, o.cancelled, $5,
                o.waived_at, o.waived_by, o.waived_reason,
                coalesce(s.accepted, 0), coalesce(s.pending, 0),
                case when s.accepted >= o.required then s.times[o.required] end
         from owed_duty o
         left join (select org_id, coalesce(person_id, 0) as person_id,
                           count(*) filter (where state = 'accepted') as accepted,
                           count(*) filter (where state = 'submitted') as pending,
                           array_agg(submitted_at order by submitted_at)
                               filter (where state = 'accepted') as times
                    from record
                    where rule_id = $1 and period_key = $2 and org_id between $3 and $4
                      and state in ('accepted', 'submitted')
                    group by 1, 2) s
           on s.org_id = o.org_id and s.person_id = coalesce(o.person_id, 0)
         where o.rule_id = $1 and o.period_key = $2 and o.org_id between $3 and $4
         {on_conflict}"
    );
    let mut created = 0;
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let mut start = lo;
        while start <= hi {
            let end = start + ORG_CHUNK - 1;
            // Each duty is inserted with its records already counted, so that its class is
            // settled once: an update afterwards would rewrite every row and run the
            // subtree totals' trigger a second time (half the cost of a first tick).
            // The statement is built above from constants only. It is planned afresh for
            // each chunk, not prepared: after five runs PostgreSQL's generic plan guesses
            // 500 organisations and recounts the records once per owed duty (minutes).
            created += sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(p.rule_id)
                .bind(&key)
                .bind(start)
                .bind(end)
                .bind(now)
                .persistent(false)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            start = end + 1;
        }
    }
    // Duties that existed before this pass are counted here; the ones just inserted
    // already are, and are not touched.
    if existed {
        sqlx::query(
            "with s as (
            select org_id, person_id,
                   count(*) filter (where state = 'accepted') as accepted,
                   count(*) filter (where state = 'submitted') as pending,
                   array_agg(submitted_at order by submitted_at) filter (where state = 'accepted') as times
            from record where rule_id = $1 and period_key = $2 and state in ('accepted', 'submitted')
            group by org_id, person_id)
         update duty d set accepted = s.accepted, pending = s.pending,
                nth_accepted_at = case when s.accepted >= d.required then s.times[d.required] end
         from s
         where d.rule_id = $1 and d.period_key = $2 and d.org_id = s.org_id
           and d.person_id is not distinct from s.person_id
           and (d.accepted, d.pending) is distinct from (s.accepted, s.pending)",
        )
        .bind(p.rule_id)
        .bind(&key)
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("update rule_period set materialized_at = $3 where rule_id = $1 and period_key = $2")
        .bind(p.rule_id)
        .bind(&key)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(created)
}

/// The first instant at which a period of any cadence may start after `now`: the next
/// local first of a month. Until then nothing new can become owed by the clock alone.
fn next_boundary(settings: &Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    let month = Period::containing(Cadence::Month, local_date(settings.tz, now));
    local_midnight(settings.tz, month.end())
}

/// What one materialization pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Materialized {
    pub rule_periods: usize,
    pub duties: u64,
}

/// Materialize every started rule period that has no duties yet, one rule period per
/// transaction, under the exclusive liability lock. Returns what it did and the instant
/// until which nothing more is owed.
pub async fn materialize_all(
    pool: &PgPool,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<(Materialized, DateTime<Utc>)> {
    let mut conn = pool.acquire().await?;
    sqlx::query("select pg_advisory_lock($1)").bind(locks::LIABILITY).execute(&mut *conn).await?;
    let result = materialize_all_locked(pool, &mut conn, settings, now).await;
    let unlocked = sqlx::query("select pg_advisory_unlock($1)").bind(locks::LIABILITY).execute(&mut *conn).await;
    if unlocked.is_err() {
        // Closing the connection is what releases a session lock for certain.
        conn.detach();
    }
    result
}

async fn materialize_all_locked(
    pool: &PgPool,
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<(Materialized, DateTime<Utc>)> {
    let through: Option<DateTime<Utc>> =
        sqlx::query_scalar("select materialized_through from materializer_state").fetch_one(&mut *conn).await?;
    if let Some(t) = through
        && t > now
    {
        return Ok((Materialized::default(), t));
    }
    // Rule periods are independent (their duties and subtree totals never share a row),
    // so several are materialized at once, each in its own transaction on its own
    // connection, while this connection holds the exclusive liability lock: a first
    // tick over a large tree is bound by PostgreSQL's CPU, one backend per core.
    let planned = plan(conn, settings, now, None).await?;
    let workers = parallel_workers(pool);
    let mut done = Materialized::default();
    let mut runs = futures_util::stream::iter(planned.into_iter().map(|p| async move {
        let mut tx = pool.begin().await?;
        // Each-member rules group the role assignments of the whole tree; keep that
        // in memory rather than spilling it to disk.
        sqlx::query("set local work_mem = '64MB'").execute(&mut *tx).await?;
        let n = materialize_period(&mut tx, &p, now).await?;
        tx.commit().await?;
        Ok::<u64, sqlx::Error>(n)
    }))
    .buffer_unordered(workers);
    while let Some(n) = runs.next().await {
        done.duties += n?;
        done.rule_periods += 1;
    }
    drop(runs);
    let next = next_boundary(settings, now);
    sqlx::query("update materializer_state set materialized_through = $1").bind(next).execute(&mut *conn).await?;
    if done.rule_periods > 0 {
        tracing::info!(rule_periods = done.rule_periods, duties = done.duties, "materialized duties");
    }
    Ok((done, next))
}

/// How many rule periods to materialize at once: one per core, at most four, and always
/// leaving the pool a connection besides the one holding the lock.
fn parallel_workers(pool: &PgPool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spare = (pool.options().get_max_connections() as usize).saturating_sub(2);
    cores.min(4).min(spare).max(1)
}

/// Materialize the started periods of some rules (a template just installed) inside the
/// caller's transaction, holding the liability lock until it commits.
pub async fn materialize_rules(
    conn: &mut PgConnection,
    settings: &Settings,
    rule_ids: &[i64],
    now: DateTime<Utc>,
) -> sqlx::Result<Materialized> {
    sqlx::query("select pg_advisory_xact_lock($1)").bind(locks::LIABILITY).execute(&mut *conn).await?;
    let mut done = Materialized::default();
    for p in plan(conn, settings, now, Some(rule_ids)).await? {
        done.duties += materialize_period(conn, &p, now).await?;
        done.rule_periods += 1;
    }
    Ok(done)
}

/// The per-process memory of how far materialization is known to reach, so that a read
/// costs nothing until the clock crosses the next month boundary.
#[derive(Debug, Default)]
pub struct Materializer {
    through_secs: AtomicI64,
}

impl Materializer {
    /// Whether a pass at `now` may find something to do: the clock has reached the
    /// boundary the last pass remembered.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        now.timestamp() >= self.through_secs.load(Ordering::Acquire)
    }

    /// Remember how far a pass reached.
    pub fn remember(&self, through: DateTime<Utc>) {
        self.through_secs.store(through.timestamp(), Ordering::Release);
    }
}

/// Take the liability lock in shared mode for the caller's transaction: changes to
/// records and single organisations run alongside each other, never in the middle of a
/// materialization.
pub async fn lock_shared(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("select pg_advisory_xact_lock_shared($1)").bind(locks::LIABILITY).execute(conn).await?;
    Ok(())
}

/// What [`sync_orgs`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub created: i64,
    pub removed: i64,
}

/// Bring the duties of some organisations in line with what they owe for every rule
/// period that exists: create what is missing (counting records already kept), set or
/// clear `cancelled`, and remove what is no longer owed and has no history.
pub async fn sync_orgs(conn: &mut PgConnection, org_ids: &[i64], now: DateTime<Utc>) -> sqlx::Result<Synced> {
    lock_shared(conn).await?;
    let created: Vec<i64> = sqlx::query_scalar(
        "insert into duty (org_id, rule_id, person_id, period_key, required, due_at, cancelled, created_at,
                           waived_at, waived_by, waived_reason)
         select od.org_id, od.rule_id, od.person_id, od.period_key, od.required, od.due_at, od.cancelled, $2,
                od.waived_at, od.waived_by, od.waived_reason
         from owed_duty od join rule_period rp on rp.rule_id = od.rule_id and rp.period_key = od.period_key
         where od.org_id = any($1) and rp.materialized_at is not null
         on conflict do nothing
         returning id",
    )
    .bind(org_ids)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    // Cancelled follows the organisation's last active day, for every duty it has; a duty
    // no longer owed at all (a member's term ended before the period, the organisation
    // moved away from the rule's subtree) but kept for its history counts no more either.
    let reopened: Vec<i64> = sqlx::query_scalar::<_, Option<i64>>(
        "with facts as (
            select d.id,
                   (o.active_until is not null and o.active_until < rp.period_end - 1)
                   or not exists (select 1 from owed_duty od
                                  where od.org_id = d.org_id and od.rule_id = d.rule_id
                                    and od.period_key = d.period_key
                                    and od.person_id is not distinct from d.person_id) as cancelled
            from duty d join org o on o.id = d.org_id
            join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
            where d.org_id = any($1))
         update duty d set cancelled = f.cancelled
         from facts f
         where d.id = f.id and d.cancelled <> f.cancelled
         returning case when d.class = 'pending' then d.id end",
    )
    .bind(org_ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .flatten()
    .collect();
    let removed = sqlx::query(
        "delete from duty d
         where d.org_id = any($1) and d.accepted = 0 and d.pending = 0 and d.waived_at is null
           and not exists (select 1 from owed_duty od where od.org_id = d.org_id and od.rule_id = d.rule_id
                           and od.period_key = d.period_key and od.person_id is not distinct from d.person_id)
           and not exists (select 1 from record r where r.org_id = d.org_id and r.rule_id = d.rule_id
                           and r.period_key = d.period_key and r.person_id is not distinct from d.person_id)
           and not exists (select 1 from notification_event e where e.duty_id = d.id)",
    )
    .bind(org_ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if !created.is_empty() {
        recount_ids(conn, &created).await?;
    }
    // A duty no longer cancelled (a reopened organisation) that is past a threshold now
    // enters it, and is told once.
    if !reopened.is_empty() {
        let today = super::settings::local_today(conn, now).await?;
        for id in reopened {
            super::notifications::fire_entered(conn, id, now, today).await?;
        }
    }
    Ok(Synced { created: created.len() as i64, removed: removed as i64 })
}

/// Recount the records of these duties (just created: records kept before they were owed
/// count for them).
pub async fn recount(conn: &mut PgConnection, duty_ids: &[i64]) -> sqlx::Result<()> {
    if duty_ids.is_empty() {
        return Ok(());
    }
    recount_ids(conn, duty_ids).await
}

async fn recount_ids(conn: &mut PgConnection, duty_ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query(
        "with s as (
            select d.id,
                   count(r.id) filter (where r.state = 'accepted') as accepted,
                   count(r.id) filter (where r.state = 'submitted') as pending,
                   array_agg(r.submitted_at order by r.submitted_at) filter (where r.state = 'accepted') as times
            from duty d
            left join record r on r.org_id = d.org_id and r.rule_id = d.rule_id and r.period_key = d.period_key
                 and r.person_id is not distinct from d.person_id and r.state in ('accepted', 'submitted')
            where d.id = any($1)
            group by d.id)
         update duty d set accepted = s.accepted, pending = s.pending,
                nth_accepted_at = case when s.accepted >= d.required then s.times[d.required] end
         from s where d.id = s.id
           and (d.accepted, d.pending) is distinct from (s.accepted, s.pending)",
    )
    .bind(duty_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// A duty's class before and after its records changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Refreshed {
    pub duty_id: i64,
    pub before: String,
    pub after: String,
}

/// Recount one duty's records after one of them changed state, and fire the
/// notification it now owes if the change sent it back below its count after a
/// threshold (a record returned after the deadline). Returns `None` when no duty is owed
/// for that organisation, rule, person and period.
pub async fn refresh(
    conn: &mut PgConnection,
    org_id: i64,
    rule_id: i64,
    person_id: Option<i64>,
    period_key: &str,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> sqlx::Result<Option<Refreshed>> {
    let row: Option<Refreshed> = sqlx::query_as(
        "with old as (
            select id, class from duty
            where org_id = $1 and rule_id = $2 and person_id is not distinct from $3 and period_key = $4
            for update),
         s as (
            select count(*) filter (where state = 'accepted') as accepted,
                   count(*) filter (where state = 'submitted') as pending,
                   array_agg(submitted_at order by submitted_at) filter (where state = 'accepted') as times
            from record
            where org_id = $1 and rule_id = $2 and person_id is not distinct from $3 and period_key = $4
              and state in ('accepted', 'submitted'))
         update duty d set accepted = s.accepted, pending = s.pending,
                nth_accepted_at = case when s.accepted >= d.required then s.times[d.required] end
         from s, old
         where d.id = old.id
         returning d.id as duty_id, old.class as before, d.class as after",
    )
    .bind(org_id)
    .bind(rule_id)
    .bind(person_id)
    .bind(period_key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = &row
        && r.after == Settled::Pending.as_str()
        && r.before != r.after
    {
        super::notifications::fire_entered(conn, r.duty_id, now, today).await?;
    }
    Ok(row)
}

/// A duty as pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct DutyView {
    pub id: String,
    pub rule: String,
    pub person: Option<String>,
    pub person_name: Option<String>,
    pub period: String,
    pub due_at: DateTime<chrono::FixedOffset>,
    pub required: i32,
    pub accepted: i32,
    pub pending: i32,
    pub status: Status,
    pub title: String,
    pub clause: String,
    pub record_kind: String,
    pub needs_review: bool,
    #[serde(skip)]
    pub due_soon_at: DateTime<Utc>,
    #[serde(skip)]
    pub rule_id: i64,
    #[serde(skip)]
    pub person_id: Option<i64>,
}

/// A duty as stored, with its deadlines, person and rule version; the version's text
/// comes from the [`RuleCatalog`].
#[derive(sqlx::FromRow)]
struct DutyRow {
    id: i64,
    rule_id: i64,
    version_id: Option<i64>,
    person_id: Option<i64>,
    person_name: Option<String>,
    period_key: String,
    due_at: DateTime<Utc>,
    due_soon_at: DateTime<Utc>,
    required: i32,
    accepted: i32,
    pending: i32,
    class: String,
}

impl DutyRow {
    fn view(self, v: &VersionInfo, settings: &Settings, now: DateTime<Utc>) -> DutyView {
        let settled: Settled = self.class.parse().unwrap_or(Settled::Pending);
        let dl = Deadlines { due_at: self.due_at, due_soon_at: self.due_soon_at };
        DutyView {
            id: self.id.to_string(),
            rule: v.rule_code.clone(),
            person: self.person_id.map(|p| p.to_string()),
            person_name: self.person_name,
            period: self.period_key,
            due_at: self.due_at.with_timezone(&settings.tz).fixed_offset(),
            required: self.required,
            accepted: self.accepted,
            pending: self.pending,
            status: status_at(settled, dl, now),
            title: v.title.clone(),
            clause: v.clause.clone(),
            record_kind: v.record_kind.clone(),
            needs_review: v.needs_review,
            due_soon_at: self.due_soon_at,
            rule_id: self.rule_id,
            person_id: self.person_id,
        }
    }
}

/// One organisation's duties whose period is exactly `period`, in the order the rules
/// stand in their systems, then by person.
pub async fn for_org_period(
    conn: &mut PgConnection,
    catalog: &RuleCatalog,
    settings: &Settings,
    org_id: i64,
    period: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<DutyView>> {
    let rows: Vec<DutyRow> = sqlx::query_as(
        "select d.id, d.rule_id, rp.version_id, d.person_id, p.name as person_name, d.period_key, d.due_at,
                rp.due_soon_at, d.required, d.accepted, d.pending, d.class
         from duty d
         join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         left join person p on p.id = d.person_id
         where d.org_id = $1 and d.period_key = $2
         order by p.name, d.person_id",
    )
    .bind(org_id)
    .bind(period)
    .fetch_all(&mut *conn)
    .await?;
    let versions = catalog.versions(conn, rows.iter().filter_map(|r| r.version_id)).await?;
    let mut out: Vec<(&VersionInfo, DutyView)> = rows
        .into_iter()
        .filter_map(|r| {
            let v = versions.get(&r.version_id?)?;
            Some((&**v, r.view(v, settings, now)))
        })
        .collect();
    // Stable: one rule's duties keep the database's order of their people.
    out.sort_by_key(|(v, _)| (v.system_id, v.position));
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

/// Counts of duties by status, all eight statuses present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub waived: i64,
    pub fulfilled: i64,
    pub late: i64,
    pub cancelled: i64,
    pub submitted: i64,
    pub overdue: i64,
    pub due_soon: i64,
    pub open: i64,
}

impl StatusCounts {
    pub fn add(&mut self, status: Status, n: i64) {
        let slot = match status {
            Status::Waived => &mut self.waived,
            Status::Fulfilled => &mut self.fulfilled,
            Status::Late => &mut self.late,
            Status::Cancelled => &mut self.cancelled,
            Status::Submitted => &mut self.submitted,
            Status::Overdue => &mut self.overdue,
            Status::DueSoon => &mut self.due_soon,
            Status::Open => &mut self.open,
        };
        *slot += n;
    }

    pub fn get(&self, status: Status) -> i64 {
        match status {
            Status::Waived => self.waived,
            Status::Fulfilled => self.fulfilled,
            Status::Late => self.late,
            Status::Cancelled => self.cancelled,
            Status::Submitted => self.submitted,
            Status::Overdue => self.overdue,
            Status::DueSoon => self.due_soon,
            Status::Open => self.open,
        }
    }

    pub fn total(&self) -> i64 {
        Status::ALL.iter().map(|s| self.get(*s)).sum()
    }

    /// Duties done (fulfilled or late) out of those that count (not waived or cancelled).
    pub fn completion(&self) -> Option<f64> {
        let counted = self.total() - self.waived - self.cancelled;
        (counted > 0).then(|| (self.fulfilled + self.late) as f64 / counted as f64)
    }
}

/// Per-subtree counts by status for `period`, for each of `org_ids` (each covering its
/// whole subtree), read from the maintained totals rather than from the duties.
pub async fn subtree_counts(
    conn: &mut PgConnection,
    org_ids: &[i64],
    period: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<HashMap<i64, StatusCounts>> {
    type TotalRow = (i64, String, i64, DateTime<Utc>, DateTime<Utc>);
    let rows: Vec<TotalRow> = sqlx::query_as(
        "select t.org_id, t.class, t.n, rp.due_at, rp.due_soon_at
         from subtree_total t join rule_period rp on rp.rule_id = t.rule_id and rp.period_key = t.period_key
         where t.org_id = any($1) and t.period_key = $2 and t.n <> 0",
    )
    .bind(org_ids)
    .bind(period)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<i64, StatusCounts> = org_ids.iter().map(|id| (*id, StatusCounts::default())).collect();
    for (org_id, class, n, due_at, due_soon_at) in rows {
        let settled: Settled = class.parse().unwrap_or(Settled::Pending);
        let status = status_at(settled, Deadlines { due_at, due_soon_at }, now);
        out.entry(org_id).or_default().add(status, n);
    }
    Ok(out)
}

/// Whether a period key names a period that has started by `now` (a future key has no
/// duties yet).
pub fn has_started(settings: &Settings, period: Period, now: DateTime<Utc>) -> bool {
    period.first_day() <= local_date(settings.tz, now)
}

/// Waive one duty with a reason (admins only; checked by the caller).
pub async fn waive(conn: &mut PgConnection, duty_id: i64, by: i64, reason: &str, now: DateTime<Utc>) -> AppResult<()> {
    lock_shared(conn).await?;
    let changed = sqlx::query(
        "update duty set waived_at = $2, waived_by = $3, waived_reason = $4 where id = $1 and waived_at is null",
    )
    .bind(duty_id)
    .bind(now)
    .bind(by)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(crate::error::AppError::conflict("the duty is waived already"));
    }
    Ok(())
}

/// The duties of some organisations in one year (every cadence), for the workbench:
/// `orgs` pairs an organisation with the person whose duties alone are wanted there
/// (a leadership member), or `None` for all of them (its secretary). Each comes with
/// its rule version's unchanging text from `catalog`, not joined here.
pub async fn for_orgs_year(
    conn: &mut PgConnection,
    catalog: &RuleCatalog,
    settings: &Settings,
    orgs: &[(i64, Option<i64>)],
    year: i32,
    now: DateTime<Utc>,
    with_open: bool,
) -> sqlx::Result<Vec<OrgDuty>> {
    let ids: Vec<i64> = orgs.iter().map(|(id, _)| *id).collect();
    // The duties are read first, by organisation (a materialized CTE): a prepared statement
    // then has one good generic plan. Without it PostgreSQL's generic plan walks every
    // duty of each rule period, so it re-plans the join on every call (most of a
    // workbench request's database time). With `with_open`, each duty's latest open
    // record comes along, saving the workbench a round trip.
    let rows: Vec<OrgDutyRow> = sqlx::query_as(
        "with d as materialized (
             select * from duty where org_id = any($1) and period_key >= $2 and period_key < $3),
         -- The latest open record of each duty, read in one pass (`record_duty`) and
         -- joined by hash: one probe per duty cost three times as much.
         o as materialized (
             select distinct on (org_id, rule_id, period_key, coalesce(person_id, 0))
                    org_id, rule_id, period_key, coalesce(person_id, 0) as person_id, id, state
             from record
             where $4 and org_id = any($1) and period_key >= $2 and period_key < $3
               and state in ('draft', 'returned')
             order by org_id, rule_id, period_key, coalesce(person_id, 0), created_at desc)
         select d.org_id, d.id, d.rule_id, rp.version_id, d.person_id, p.name as person_name, d.period_key,
                d.due_at, rp.due_soon_at, d.required, d.accepted, d.pending, d.class, o.id as open_id,
                o.state as open_state, rv.comment as open_comment, rv.reviewer as open_reviewer
         from d
         join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         left join person p on p.id = d.person_id
         left join o on o.org_id = d.org_id and o.rule_id = d.rule_id and o.period_key = d.period_key
                    and o.person_id = coalesce(d.person_id, 0)
         left join lateral (select rw.comment, u.login as reviewer
                            from record_review rw join app_user u on u.id = rw.reviewer_id
                            where o.state = 'returned' and rw.record_id = o.id and rw.decision = 'return'
                            order by rw.created_at desc limit 1) rv on true
         order by d.org_id, d.due_at, p.name",
    )
    .bind(&ids)
    .bind(year.to_string())
    .bind((year + 1).to_string())
    .bind(with_open)
    .fetch_all(&mut *conn)
    .await?;
    let versions = catalog.versions(conn, rows.iter().filter_map(|r| r.duty.version_id)).await?;
    let mut out: Vec<(&VersionInfo, OrgDuty)> = rows
        .into_iter()
        .filter(|r| {
            orgs.iter().any(|(id, person)| *id == r.org_id && person.is_none_or(|p| r.duty.person_id == Some(p)))
        })
        .filter_map(|r| {
            let v = versions.get(&r.duty.version_id?)?;
            let open = r.open_id.map(|id| OpenRecord {
                id,
                returned: r.open_state.as_deref() == Some("returned"),
                comment: r.open_comment,
                reviewer: r.open_reviewer,
            });
            Some((&**v, OrgDuty { org_id: r.org_id, open, duty: r.duty.view(v, settings, now) }))
        })
        .collect();
    // By organisation and deadline, then as the rules stand in their systems; the sort is
    // stable, so duties of one rule keep the database's order of their people's names.
    out.sort_by_key(|(v, d)| (d.org_id, d.duty.due_at, v.system_id, v.position));
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

#[derive(sqlx::FromRow)]
struct OrgDutyRow {
    org_id: i64,
    #[sqlx(flatten)]
    duty: DutyRow,
    open_id: Option<i64>,
    open_state: Option<String>,
    open_comment: Option<String>,
    open_reviewer: Option<String>,
}

/// One duty of [`for_orgs_year`], with its organisation and the latest record still open
/// on it (a draft, or one returned to the branch).
pub struct OrgDuty {
    pub org_id: i64,
    pub duty: DutyView,
    pub open: Option<OpenRecord>,
}

/// A draft or returned record; for a returned one, the comment and login of whoever
/// returned it last.
pub struct OpenRecord {
    pub id: i64,
    pub returned: bool,
    pub comment: Option<String>,
    pub reviewer: Option<String>,
}

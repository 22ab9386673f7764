//! Read-only queries for the subtree overview (下级概况): the organisations around one
//! organisation, the period keys that exist, per-subtree counts for several periods at
//! once, and the overdue duties of a subtree. Each query is bounded and served by an
//! index named beside it; counts come from the maintained totals (`subtree_total`), never
//! from the duties of a large subtree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::db::duties::StatusCounts;
use crate::domain::status::{Settled, status_at};
use crate::domain::time::Deadlines;

/// An organisation with its kind's names, as the overview lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgEntry {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind_zh: String,
    pub kind_en: String,
    pub active_until: Option<chrono::NaiveDate>,
}

/// Organisations by id, in tree order (root first). Index: `org_pkey`.
pub async fn lineage(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<OrgEntry>> {
    sqlx::query_as(
        "select o.id, o.code, o.name, k.name_zh as kind_zh, k.name_en as kind_en, o.active_until
         from org o join org_kind k on k.code = o.kind
         where o.id = any($1)
         order by o.path
         limit 64",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The direct children of an organisation, by code, at most `limit`. Index: `org_parent`
/// (parent_id, code).
pub async fn children(conn: &mut PgConnection, parent_id: i64, limit: i64) -> sqlx::Result<Vec<OrgEntry>> {
    sqlx::query_as(
        "select o.id, o.code, o.name, k.name_zh as kind_zh, k.name_en as kind_en, o.active_until
         from org o join org_kind k on k.code = o.kind
         where o.parent_id = $1
         order by o.code
         limit $2",
    )
    .bind(parent_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The roots of the tree, by code, at most `limit`. Index: `org_parent` (parent_id is null).
pub async fn roots(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<OrgEntry>> {
    sqlx::query_as(
        "select o.id, o.code, o.name, k.name_zh as kind_zh, k.name_en as kind_en, o.active_until
         from org o join org_kind k on k.code = o.kind
         where o.parent_id is null
         order by o.code
         limit $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The period keys of one year that have rule periods (so may have duties), in key order,
/// and the first key of all (the earliest year with duties). Index: `rule_period_key`.
pub async fn period_keys(conn: &mut PgConnection, year: i32) -> sqlx::Result<(Vec<String>, Option<String>)> {
    sqlx::query_as(
        "select array(select distinct period_key from rule_period
                      where period_key >= $1 and period_key < $2 order by 1),
                (select min(period_key) from rule_period)",
    )
    .bind(year.to_string())
    .bind((year + 1).to_string())
    .fetch_one(conn)
    .await
}

/// How many duties of one organisation's subtree, for one of the asked period keys, are
/// in one settled class with the same deadlines. Independent of the clock: the status of
/// each is worked out at the time of reading ([`counts_at`]), so groups may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountGroup {
    pub org_id: i64,
    /// Index into the asked keys.
    pub key: usize,
    pub settled: Settled,
    pub deadlines: Deadlines,
    pub n: i64,
}

/// The per-subtree count groups of each of `org_ids` for each of `keys`, read from the
/// maintained totals. Indexes: `duty_total`'s primary key and `duty_identity`, both
/// (org_id, period_key, …), and `rule_period`'s for the deadlines.
pub async fn count_groups(conn: &mut PgConnection, org_ids: &[i64], keys: &[String]) -> sqlx::Result<Vec<CountGroup>> {
    // The years the keys fall in, as a range on `period_key`: the organisations' own
    // duties are read on (org_id, period_key) with one index descent per organisation,
    // where `period_key = any(…)` would make one per organisation and key.
    let years = keys.iter().filter_map(|k| k.get(..4)?.parse::<i32>().ok());
    let (first, last) = (years.clone().min().unwrap_or(0), years.max().unwrap_or(0));
    // These are `subtree_total`'s two parts (the descendants' totals, and the
    // organisations' own duties) written out: through the view PostgreSQL puts
    // `period_key = any(…)` on `duty_identity` rather than the range (494 buffers instead
    // of 90 for a root's children by quarter). The rows are summed by deadline here, not
    // in SQL: joining them to the deadlines and grouping there took PostgreSQL 5 ms for a
    // root's thirty children by quarter, against 2 ms to read them. The database is the
    // one part every app server shares.
    // (org_id, rule_id, position of the key, position of the class, n)
    type Row = (i64, i64, Option<i32>, Option<i32>, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "select org_id, rule_id, array_position($2, period_key), array_position($5, class), n from duty_total
         where org_id = any($1) and period_key = any($2) and n <> 0
         union all
         select org_id, rule_id, array_position($2, period_key), array_position($5, class), count(*) from duty
         where org_id = any($1) and period_key >= $3 and period_key < $4 and period_key = any($2)
         group by org_id, rule_id, period_key, class",
    )
    .bind(org_ids)
    .bind(keys)
    .bind(first.to_string())
    .bind((last + 1).to_string())
    .bind(Settled::ALL.map(|c| c.as_str()).as_slice())
    .fetch_all(&mut *conn)
    .await?;
    type RulePeriod = (i64, Option<i32>, DateTime<Utc>, DateTime<Utc>);
    let periods: Vec<RulePeriod> = sqlx::query_as(
        "select rule_id, array_position($1, period_key), due_at, due_soon_at from rule_period
         where period_key = any($1)",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?;
    // Positions from array_position count from 1.
    let index = |position: Option<i32>| usize::try_from(position?).ok()?.checked_sub(1);
    let deadlines: HashMap<(i64, usize), Deadlines> = periods
        .into_iter()
        .filter_map(|(rule, key, due_at, due_soon_at)| Some(((rule, index(key)?), Deadlines { due_at, due_soon_at })))
        .collect();
    let mut groups: HashMap<(i64, usize, Settled, Deadlines), i64> = HashMap::new();
    for (org_id, rule_id, key, class, n) in rows {
        // Every duty has its rule period (a foreign key) and a class of the six.
        let Some(key) = index(key) else { continue };
        let (Some(d), Some(settled)) = (deadlines.get(&(rule_id, key)), index(class).and_then(|c| Settled::ALL.get(c)))
        else {
            continue;
        };
        *groups.entry((org_id, key, *settled, *d)).or_default() += n;
    }
    Ok(groups
        .into_iter()
        .map(|((org_id, key, settled, deadlines), n)| CountGroup { org_id, key, settled, deadlines, n })
        .collect())
}

/// Per-subtree counts by status at `now` of each of `org_ids` for each of `keys` (every
/// pair present, zeros included), from their count groups.
pub fn counts_at(
    groups: &[CountGroup],
    org_ids: &[i64],
    keys: &[String],
    now: DateTime<Utc>,
) -> HashMap<(i64, String), StatusCounts> {
    let mut out: HashMap<(i64, String), StatusCounts> = HashMap::new();
    for id in org_ids {
        for k in keys {
            out.insert((*id, k.clone()), StatusCounts::default());
        }
    }
    for g in groups {
        let Some(key) = keys.get(g.key) else { continue };
        out.entry((g.org_id, key.clone())).or_default().add(status_at(g.settled, g.deadlines, now), g.n);
    }
    out
}

/// Per-subtree counts by status of each of `org_ids` for each of `keys` at `now`, read
/// now (see [`CountsCache`] for the pages' kept copy).
pub async fn counts_by_period(
    conn: &mut PgConnection,
    org_ids: &[i64],
    keys: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<HashMap<(i64, String), StatusCounts>> {
    Ok(counts_at(&count_groups(conn, org_ids, keys).await?, org_ids, keys, now))
}

/// The pages' kept copies of count groups. A subtree overview reads the same few thousand
/// totals on every view, and a superior sorting the table, switching tabs or coming back
/// from a branch asks for them again. A copy serves while nothing has changed duties
/// through this process since it was read ([`CountsCache::changed`]), and for at most
/// `max_age`: what another process changes meanwhile (a `tick` command, another server)
/// shows that much later, as on a streaming replica. The statuses are worked out at
/// each view, so the clock never makes a copy wrong.
#[derive(Debug)]
pub struct CountsCache {
    max_age: Duration,
    epoch: AtomicU64,
    kept: Mutex<Copies>,
}

/// The copies by what was asked: the organisations and the period keys.
type Copies = HashMap<(Vec<i64>, Vec<String>), Kept>;

#[derive(Debug)]
struct Kept {
    epoch: u64,
    read_at: Instant,
    groups: Arc<Vec<CountGroup>>,
}

/// Copies kept at most: a few hundred pages' worth, a few megabytes at the root's size.
const KEPT_MAX: usize = 256;

impl CountsCache {
    /// Copies serve for at most `max_age`; zero keeps none.
    pub fn new(max_age: Duration) -> CountsCache {
        CountsCache { max_age, epoch: AtomicU64::new(0), kept: Mutex::new(HashMap::new()) }
    }

    /// Duties may have changed: no copy read before serves again.
    pub fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Copies> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`counts_by_period`], from a copy when one serves.
    pub async fn counts(
        &self,
        conn: &mut PgConnection,
        org_ids: &[i64],
        keys: &[String],
        now: DateTime<Utc>,
    ) -> sqlx::Result<HashMap<(i64, String), StatusCounts>> {
        if self.max_age.is_zero() {
            return counts_by_period(conn, org_ids, keys, now).await;
        }
        let wanted = (org_ids.to_vec(), keys.to_vec());
        // Taken before reading: a change committed after the read began moves the epoch on,
        // so what was read is not kept as current.
        let (epoch, read_at) = (self.epoch.load(Ordering::SeqCst), Instant::now());
        let fresh = |k: &Kept| k.epoch == epoch && k.read_at.elapsed() < self.max_age;
        let copy = self.lock().get(&wanted).filter(|k| fresh(k)).map(|k| k.groups.clone());
        let groups = match copy {
            Some(groups) => groups,
            None => {
                let groups = Arc::new(count_groups(conn, org_ids, keys).await?);
                let mut kept = self.lock();
                if self.epoch.load(Ordering::SeqCst) == epoch {
                    if kept.len() >= KEPT_MAX {
                        kept.retain(|_, k| fresh(k));
                        if kept.len() >= KEPT_MAX {
                            kept.clear();
                        }
                    }
                    kept.insert(wanted, Kept { epoch, read_at, groups: groups.clone() });
                }
                groups
            }
        };
        Ok(counts_at(&groups, org_ids, keys, now))
    }
}

/// How many duties of `period` are overdue in the whole deployment (every tree): the
/// number of entries the `duty_pending` index holds for that period up to `now`. Indexes:
/// `org_parent` for the roots, `duty_total`'s primary key and `duty_identity` (the
/// roots' own duties), `rule_period`'s primary key.
pub async fn overdue_everywhere(conn: &mut PgConnection, period: &str, now: DateTime<Utc>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select coalesce(sum(t.n), 0)::bigint
         from subtree_total t
         join rule_period rp on rp.rule_id = t.rule_id and rp.period_key = t.period_key
         where t.org_id = any(array(select id from org where parent_id is null))
           and t.period_key = $1 and t.class = 'pending' and rp.due_at <= $2",
    )
    .bind(period)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// How many organisations the subtree rooted at `path` has, counting no further than
/// `cap`. Index: `org_path` (an index-only range scan).
pub async fn subtree_size(conn: &mut PgConnection, path: &[i64], cap: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from (select 1 from org where path >= $1 and path < subtree_upper($1) limit $2) s",
    )
    .bind(path)
    .bind(cap)
    .fetch_one(conn)
    .await
}

/// How to find the first overdue duties of a subtree, in the order of their deadline and
/// organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueScan {
    /// Read the period's overdue duties from `duty_pending` in that order, keep the
    /// subtree's, and stop at the limit: it examines about `limit × everywhere /
    /// in_subtree` entries, few for a large subtree.
    PendingIndex,
    /// Look up the duties of every organisation of the subtree (`org_path`, then
    /// `duty_identity`) and sort them: it examines the subtree, cheap when it is small.
    SubtreeOrgs,
}

/// About how many entries of `duty_pending` the index scan reads before it has `limit`
/// of the subtree's: the overdue duties are taken to be spread evenly.
pub fn index_cost(overdue_everywhere: i64, overdue_in_subtree: i64, limit: i64) -> i64 {
    if overdue_in_subtree <= limit {
        overdue_everywhere
    } else {
        overdue_everywhere.saturating_mul(limit) / overdue_in_subtree
    }
    .min(overdue_everywhere)
}

/// The index scan needs no second opinion when it reads at most this many entries.
pub const CHEAP_SCAN: i64 = 5_000;

/// Which scan costs less: the index scan ([`index_cost`]), or the walk over the
/// subtree's organisations (`subtree_orgs`, when counted), which reads about twice as
/// many pages per organisation (the organisation, then its duties) as the index scan
/// per entry.
pub fn choose_scan(index_cost: i64, subtree_orgs: Option<i64>) -> OverdueScan {
    match subtree_orgs {
        Some(n) if n.saturating_mul(2) < index_cost => OverdueScan::SubtreeOrgs,
        _ => OverdueScan::PendingIndex,
    }
}

/// One overdue duty, as the overview lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueDuty {
    pub id: i64,
    pub org_code: String,
    pub org_name: String,
    pub rule: String,
    pub title: String,
    pub person_name: Option<String>,
    pub due_at: DateTime<Utc>,
}

/// The first `limit` overdue duties of `period` in the subtree rooted at `path`, by
/// deadline and organisation (shown in tree order, then in the order of the rules).
/// `scan` picks the index (see [`choose_scan`]); both give the same rows.
pub async fn overdue_duties(
    conn: &mut PgConnection,
    path: &[i64],
    period: &str,
    now: DateTime<Utc>,
    limit: i64,
    scan: OverdueScan,
) -> sqlx::Result<Vec<OverdueDuty>> {
    // First the ids, then the words for those few. `offset 0` keeps each lateral
    // subquery a subquery, so the plan is the one chosen here, whatever the estimates.
    let ids: Vec<i64> = match scan {
        OverdueScan::PendingIndex => {
            sqlx::query_scalar(
                "select d.id
                 from duty d
                 cross join lateral (
                    select 1 from org o
                    where o.id = d.org_id and o.path >= $1 and o.path < subtree_upper($1) offset 0) o
                 where d.class = 'pending' and d.period_key = $2 and d.due_at <= $3
                 order by d.due_at, d.org_id, d.rule_id, d.person_id
                 limit $4",
            )
            .bind(path)
            .bind(period)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        OverdueScan::SubtreeOrgs => {
            sqlx::query_scalar(
                "select d.id
                 from org o
                 cross join lateral (
                    select d.id, d.due_at, d.org_id, d.rule_id, d.person_id from duty d
                    where d.org_id = o.id and d.period_key = $2 and d.class = 'pending' and d.due_at <= $3
                    offset 0) d
                 where o.path >= $1 and o.path < subtree_upper($1)
                 order by d.due_at, d.org_id, d.rule_id, d.person_id
                 limit $4",
            )
            .bind(path)
            .bind(period)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "select d.id, o.code as org_code, o.name as org_name, r.code as rule, v.title, p.name as person_name, d.due_at
         from duty d
         join org o on o.id = d.org_id
         join rule r on r.id = d.rule_id
         join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         join rule_version v on v.id = rp.version_id
         left join person p on p.id = d.person_id
         where d.id = any($1)
         order by d.due_at, o.path, r.system_id, r.position, p.name, d.id",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_groups_read_by_the_clock_of_each_view() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let deadlines =
            Deadlines { due_at: at("2026-10-01T00:00:00+08:00"), due_soon_at: at("2026-09-24T00:00:00+08:00") };
        let groups = [
            CountGroup { org_id: 7, key: 0, settled: Settled::Pending, deadlines, n: 3 },
            CountGroup { org_id: 7, key: 0, settled: Settled::Fulfilled, deadlines, n: 2 },
        ];
        let keys = ["2026-Q3".to_owned()];
        let seen = |now: &str| {
            let counts = counts_at(&groups, &[7, 8], &keys, at(now));
            assert_eq!(counts[&(8, keys[0].clone())], StatusCounts::default(), "an organisation without duties");
            let c = &counts[&(7, keys[0].clone())];
            (c.open, c.due_soon, c.overdue, c.fulfilled)
        };
        assert_eq!(seen("2026-09-01T00:00:00+08:00"), (3, 0, 0, 2));
        assert_eq!(seen("2026-09-25T00:00:00+08:00"), (0, 3, 0, 2));
        assert_eq!(seen("2026-10-02T00:00:00+08:00"), (0, 0, 3, 2));
    }

    #[test]
    fn a_subtree_holding_most_overdue_duties_finds_them_in_the_index_at_once() {
        // The root of one of three trees: a third of the overdue duties are its own.
        assert_eq!(index_cost(63_000, 21_000, 100), 300);
        assert_eq!(choose_scan(300, None), OverdueScan::PendingIndex);
    }

    #[test]
    fn a_small_subtree_in_a_tree_far_behind_is_walked() {
        let cost = index_cost(63_000, 40, 100);
        assert_eq!(cost, 63_000);
        assert_eq!(choose_scan(cost, Some(60)), OverdueScan::SubtreeOrgs);
    }

    #[test]
    fn a_large_subtree_is_read_from_the_index_even_when_that_costs_something() {
        assert_eq!(choose_scan(index_cost(63_000, 40, 100), Some(63_000)), OverdueScan::PendingIndex);
    }
}

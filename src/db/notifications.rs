//! Notification events: `due_soon` when a duty enters its reminder window, `overdue` when
//! it passes its deadline; at most one event per duty and kind, ever (a unique key holds
//! that across servers and reruns). Each event is delivered to users as notifications.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// Insert events of `kind` for these duties (skipping any that exist) and a notification
/// for each recipient: the people who answer for the duty, and for `overdue` also the
/// parent organisation's secretaries and coordinators. Returns how many events were new.
pub async fn fire(
    conn: &mut PgConnection,
    duty_ids: &[i64],
    kind: &str,
    now: DateTime<Utc>,
    today: chrono::NaiveDate,
) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "with ev as (
            insert into notification_event (duty_id, kind, created_at)
            select id, $2, $3 from unnest($1::bigint[]) as t(id) order by id
            on conflict do nothing
            returning id, duty_id, kind),
         recipients as (
            -- the person a per-member duty binds
            select ev.id as event_id, d.person_id
            from ev join duty d on d.id = ev.duty_id
            where d.person_id is not null
            union
            -- holders of the rule's responsible role on the organisation
            select ev.id, ra.person_id
            from ev join duty d on d.id = ev.duty_id
            join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
            join rule_version v on v.id = rp.version_id
            join role_assignment ra on ra.org_id = d.org_id and ra.role = v.responsible_role
                 and ra.starts_on <= $4 and (ra.ends_on is null or ra.ends_on >= $4)
            where d.person_id is null
            union
            -- for overdue duties, the parent's secretaries and coordinators
            select ev.id, ra.person_id
            from ev join duty d on d.id = ev.duty_id join org o on o.id = d.org_id
            join role_assignment ra on ra.org_id = o.parent_id and ra.role in ('secretary', 'coordinator')
                 and ra.starts_on <= $4 and (ra.ends_on is null or ra.ends_on >= $4)
            where ev.kind = 'overdue'),
         delivered as (
            insert into notification (event_id, user_id)
            select distinct r.event_id, u.id
            from recipients r join app_user u on u.person_id = r.person_id and u.disabled_at is null
            on conflict do nothing)
         select count(*) from ev",
    )
    .bind(duty_ids)
    .bind(kind)
    .bind(now)
    .bind(today)
    .fetch_one(conn)
    .await?;
    Ok(n as u64)
}

/// A duty just went back below its count (a record returned or withdrawn): if a threshold
/// has passed that it had not been told of, and it existed before that threshold, tell now.
pub async fn fire_entered(
    conn: &mut PgConnection,
    duty_id: i64,
    now: DateTime<Utc>,
    today: chrono::NaiveDate,
) -> sqlx::Result<()> {
    let row: Option<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "select d.created_at, rp.due_soon_at, rp.due_at
         from duty d join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         where d.id = $1",
    )
    .bind(duty_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((created_at, due_soon_at, due_at)) = row else { return Ok(()) };
    if now >= due_at && created_at < due_at {
        fire(conn, &[duty_id], "overdue", now, today).await?;
    } else if now >= due_soon_at && now < due_at && created_at < due_soon_at {
        fire(conn, &[duty_id], "due_soon", now, today).await?;
    }
    Ok(())
}

/// One notification as a user's list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NotificationView {
    pub event_id: i64,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub duty_id: i64,
    pub org_code: String,
    pub org_name: String,
    pub rule: String,
    pub title: String,
    pub period_key: String,
    pub due_at: DateTime<Utc>,
}

/// A user's notifications, newest first.
pub async fn for_user(
    conn: &mut PgConnection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<NotificationView>> {
    sqlx::query_as(
        "select e.id as event_id, e.kind, e.created_at, n.read_at, d.id as duty_id, o.code as org_code,
                o.name as org_name, r.code as rule, v.title, d.period_key, d.due_at
         from notification n
         join notification_event e on e.id = n.event_id
         join duty d on d.id = e.duty_id
         join org o on o.id = d.org_id
         join rule r on r.id = d.rule_id
         join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         join rule_version v on v.id = rp.version_id
         where n.user_id = $1
         order by e.created_at desc, e.id desc
         limit $2 offset $3",
    )
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await
}

pub async fn unread_count(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from notification where user_id = $1 and read_at is null")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

pub async fn mark_read(
    conn: &mut PgConnection,
    user_id: i64,
    event_id: Option<i64>,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update notification set read_at = $3 where user_id = $1 and read_at is null and ($2::bigint is null or event_id = $2)",
    )
    .bind(user_id)
    .bind(event_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

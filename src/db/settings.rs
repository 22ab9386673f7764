//! Deployment settings stored in the database: the time zone, reminder leads per cadence,
//! attachment limits. Every server reads the same values.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::domain::period::Cadence;
use crate::error::{AppError, AppResult};

/// Default largest attachment: 20 MiB.
pub const DEFAULT_ATTACHMENT_MAX_BYTES: i64 = 20 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadDays {
    pub year: u32,
    pub half: u32,
    pub quarter: u32,
    pub month: u32,
}

impl Default for LeadDays {
    fn default() -> LeadDays {
        LeadDays {
            year: Cadence::Year.default_lead_days(),
            half: Cadence::Half.default_lead_days(),
            quarter: Cadence::Quarter.default_lead_days(),
            month: Cadence::Month.default_lead_days(),
        }
    }
}

impl LeadDays {
    pub fn of(&self, cadence: Cadence) -> u32 {
        match cadence {
            Cadence::Year => self.year,
            Cadence::Half => self.half,
            Cadence::Quarter => self.quarter,
            Cadence::Month => self.month,
        }
    }
}

/// The settings every part of the portal reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tz: Tz,
    pub lead_days: LeadDays,
    pub attachment_max_bytes: i64,
    /// Other settings (mail server, …) as stored, for the settings page.
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Read the settings; on a new installation, fix the time zone to `install_tz`.
pub async fn load_or_install(conn: &mut PgConnection, install_tz: &str) -> anyhow::Result<Settings> {
    let tz: Tz = install_tz
        .parse()
        .map_err(|_| anyhow::anyhow!("ZRZ_TIME_ZONE {install_tz:?} is not an IANA time zone such as Asia/Shanghai"))?;
    sqlx::query("insert into setting (key, value) values ('time_zone', to_jsonb($1::text)) on conflict do nothing")
        .bind(tz.name())
        .execute(&mut *conn)
        .await?;
    let settings = load(conn).await?;
    if settings.tz != tz && install_tz != "Asia/Shanghai" {
        tracing::warn!(
            "ZRZ_TIME_ZONE is {install_tz} but this deployment was installed with {}; keeping {}",
            settings.tz,
            settings.tz
        );
    }
    Ok(settings)
}

pub async fn load(conn: &mut PgConnection) -> anyhow::Result<Settings> {
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as("select key, value from setting order by key").fetch_all(conn).await?;
    let mut other: BTreeMap<String, serde_json::Value> = rows.into_iter().collect();
    let tz = match other.remove("time_zone") {
        Some(serde_json::Value::String(name)) => {
            name.parse().map_err(|_| anyhow::anyhow!("stored time zone {name:?} is unknown"))?
        }
        _ => chrono_tz::Asia::Shanghai,
    };
    let lead_days = match other.remove("lead_days") {
        Some(v) => serde_json::from_value(v).context("stored lead_days")?,
        None => LeadDays::default(),
    };
    let attachment_max_bytes = match other.remove("attachment_max_bytes") {
        Some(v) => v.as_i64().unwrap_or(DEFAULT_ATTACHMENT_MAX_BYTES),
        None => DEFAULT_ATTACHMENT_MAX_BYTES,
    };
    Ok(Settings { tz, lead_days, attachment_max_bytes, other })
}

/// Store one setting's JSON value.
pub async fn store(conn: &mut PgConnection, key: &str, value: &serde_json::Value) -> AppResult<()> {
    if key == "time_zone" {
        let has_duties: bool = sqlx::query_scalar("select exists (select 1 from duty)").fetch_one(&mut *conn).await?;
        if has_duties {
            return Err(AppError::conflict("the time zone cannot change once duties exist"));
        }
    }
    sqlx::query(
        "insert into setting (key, value) values ($1, $2) on conflict (key) do update set value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

/// Today's local date at `now`, in the deployment's stored zone (for functions deep in
/// the database layer that are not handed the settings).
pub async fn local_today(
    conn: &mut PgConnection,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<chrono::NaiveDate> {
    let name: Option<String> =
        sqlx::query_scalar("select value #>> '{}' from setting where key = 'time_zone'").fetch_optional(conn).await?;
    let tz: Tz = name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::Asia::Shanghai);
    Ok(crate::domain::time::local_date(tz, now))
}

//! Local calendar days and instants in the deployment's one time zone.

use chrono::{DateTime, Days, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::period::Period;

/// The instant a local calendar day begins. Where a zone skips midnight (a DST jump),
/// the day begins at the first instant that exists.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..4 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return x.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => t += chrono::Duration::minutes(30),
        }
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The local calendar day an instant falls on.
pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// When a period starts, as an instant.
pub fn period_start(tz: Tz, period: Period) -> DateTime<Utc> {
    local_midnight(tz, period.first_day())
}

/// When a period ends (exclusive), as an instant.
pub fn period_end(tz: Tz, period: Period) -> DateTime<Utc> {
    local_midnight(tz, period.end())
}

/// The deadlines of one duty: `due_at` and the start of its reminder window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadlines {
    pub due_at: DateTime<Utc>,
    pub due_soon_at: DateTime<Utc>,
}

/// `due_at` = period end + `grace_days` days, at local midnight; the reminder window opens
/// `lead_days` local calendar days before that.
pub fn deadlines(tz: Tz, period: Period, grace_days: u32, lead_days: u32) -> Deadlines {
    let due_day = period.end() + Days::new(u64::from(grace_days));
    let soon_day = due_day - Days::new(u64::from(lead_days));
    Deadlines { due_at: local_midnight(tz, due_day), due_soon_at: local_midnight(tz, soon_day) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> Tz {
        "Asia/Shanghai".parse().unwrap()
    }

    #[test]
    fn a_q3_duty_without_grace_is_due_at_local_midnight_on_october_first() {
        let d = deadlines(shanghai(), "2026-Q3".parse().unwrap(), 0, 7);
        assert_eq!(d.due_at.to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(d.due_soon_at.to_rfc3339(), "2026-09-23T16:00:00+00:00");
    }

    #[test]
    fn grace_days_move_the_deadline_by_calendar_days() {
        let d = deadlines(shanghai(), "2026-12".parse().unwrap(), 10, 3);
        assert_eq!(local_date(shanghai(), d.due_at), NaiveDate::from_ymd_opt(2027, 1, 11).unwrap());
        assert_eq!(local_date(shanghai(), d.due_soon_at), NaiveDate::from_ymd_opt(2027, 1, 8).unwrap());
    }

    #[test]
    fn a_yearly_lead_crosses_into_the_previous_month() {
        let d = deadlines(shanghai(), "2028".parse().unwrap(), 0, 30);
        assert_eq!(local_date(shanghai(), d.due_soon_at), NaiveDate::from_ymd_opt(2028, 12, 2).unwrap());
    }

    #[test]
    fn local_days_follow_the_zone_not_utc() {
        let tz = shanghai();
        let late_evening_utc = Utc.with_ymd_and_hms(2026, 3, 31, 16, 30, 0).unwrap();
        assert_eq!(local_date(tz, late_evening_utc), NaiveDate::from_ymd_opt(2026, 4, 1).unwrap());
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_at_the_first_real_instant() {
        // Santiago skipped 2022-09-11 00:00 (clocks went to 01:00).
        let tz: Tz = "America/Santiago".parse().unwrap();
        let t = local_midnight(tz, NaiveDate::from_ymd_opt(2022, 9, 11).unwrap());
        assert_eq!(local_date(tz, t), NaiveDate::from_ymd_opt(2022, 9, 11).unwrap());
    }
}

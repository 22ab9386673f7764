//! The status table of DESIGN.md section 2: what state a duty is in at an instant.
//!
//! A duty's status depends on the clock only through its deadlines, so it splits in two:
//! [`Settled`], fixed by the duty's records and flags (stored in the database), and
//! [`status_at`], which turns a `Pending` duty into `open`, `due_soon` or `overdue`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::period::Period;
use super::time::Deadlines;

/// What a page or the API shows for a duty, evaluated at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Waived,
    Fulfilled,
    Late,
    Cancelled,
    Submitted,
    Overdue,
    DueSoon,
    Open,
}

impl Status {
    /// In the order of the status table.
    pub const ALL: [Status; 8] = [
        Status::Waived,
        Status::Fulfilled,
        Status::Late,
        Status::Cancelled,
        Status::Submitted,
        Status::Overdue,
        Status::DueSoon,
        Status::Open,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waived => "waived",
            Status::Fulfilled => "fulfilled",
            Status::Late => "late",
            Status::Cancelled => "cancelled",
            Status::Submitted => "submitted",
            Status::Overdue => "overdue",
            Status::DueSoon => "due_soon",
            Status::Open => "open",
        }
    }

    /// Whether the duty still needs something from the organisation.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Status::Overdue | Status::DueSoon | Status::Open)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or(())
    }
}

/// The part of a duty's status that the clock cannot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    Waived,
    Fulfilled,
    Late,
    Cancelled,
    Submitted,
    /// Not enough records yet: `open`, `due_soon` or `overdue` depending on the time.
    Pending,
}

impl Settled {
    pub const ALL: [Settled; 6] =
        [Settled::Waived, Settled::Fulfilled, Settled::Late, Settled::Cancelled, Settled::Submitted, Settled::Pending];

    /// The name stored in `duty.class`.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Waived => "waived",
            Settled::Fulfilled => "fulfilled",
            Settled::Late => "late",
            Settled::Cancelled => "cancelled",
            Settled::Submitted => "submitted",
            Settled::Pending => "pending",
        }
    }

    /// The rows of the status table above `overdue`, from a duty's stored counts.
    /// `nth_accepted_at` is when the `required`-th accepted record (by submission time) was
    /// submitted; it is `None` while fewer than `required` are accepted.
    /// The database's `duty_class()` function mirrors this; a test keeps them equal.
    pub fn from_counts(c: &DutyCounts) -> Settled {
        if c.waived {
            return Settled::Waived;
        }
        if c.accepted >= c.required
            && let Some(at) = c.nth_accepted_at
        {
            return if at <= c.due_at { Settled::Fulfilled } else { Settled::Late };
        }
        if c.cancelled {
            return Settled::Cancelled;
        }
        if c.accepted + c.pending >= c.required {
            return Settled::Submitted;
        }
        Settled::Pending
    }
}

impl FromStr for Settled {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Settled::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

/// A duty's stored counts: what [`Settled::from_counts`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DutyCounts {
    pub waived: bool,
    pub required: u32,
    pub accepted: u32,
    pub nth_accepted_at: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub pending: u32,
    pub due_at: DateTime<Utc>,
}

/// Everything the status table reads about one duty, before any of it is summarised.
#[derive(Debug, Clone)]
pub struct DutyFacts {
    pub waived: bool,
    /// The rule's `min_count` for this period (N).
    pub required: u32,
    /// `submitted_at` of each accepted record (A), in any order.
    pub accepted_submitted_at: Vec<DateTime<Utc>>,
    /// Submitted records awaiting review (|P|).
    pub pending: u32,
    pub org_active_until: Option<NaiveDate>,
    pub period: Period,
    pub deadlines: Deadlines,
}

/// Whether closing an organisation on `active_until` cancels its duty for `period`:
/// it does when the organisation's last active day comes before the period's last day.
pub fn closed_before_period_ends(active_until: Option<NaiveDate>, period: Period) -> bool {
    active_until.is_some_and(|until| until < period.last_day())
}

impl DutyFacts {
    /// Summarise the facts as the database stores them.
    pub fn counts(&self) -> DutyCounts {
        let mut accepted = self.accepted_submitted_at.clone();
        accepted.sort();
        let n = self.required as usize;
        DutyCounts {
            waived: self.waived,
            required: self.required,
            accepted: accepted.len() as u32,
            nth_accepted_at: n.checked_sub(1).and_then(|i| accepted.get(i).copied()),
            cancelled: closed_before_period_ends(self.org_active_until, self.period),
            pending: self.pending,
            due_at: self.deadlines.due_at,
        }
    }

    pub fn settle(&self) -> Settled {
        Settled::from_counts(&self.counts())
    }

    /// The status table, first match wins.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        status_at(self.settle(), self.deadlines, now)
    }
}

/// The status of a duty at `now`, from its settled class and its deadlines.
pub fn status_at(settled: Settled, deadlines: Deadlines, now: DateTime<Utc>) -> Status {
    match settled {
        Settled::Waived => Status::Waived,
        Settled::Fulfilled => Status::Fulfilled,
        Settled::Late => Status::Late,
        Settled::Cancelled => Status::Cancelled,
        Settled::Submitted => Status::Submitted,
        Settled::Pending if now >= deadlines.due_at => Status::Overdue,
        Settled::Pending if now >= deadlines.due_soon_at => Status::DueSoon,
        Settled::Pending => Status::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::deadlines;
    use chrono::{Duration, TimeZone};
    use chrono_tz::Tz;

    fn tz() -> Tz {
        "Asia/Shanghai".parse().unwrap()
    }

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        tz().with_ymd_and_hms(y, m, d, h, min, s).unwrap().with_timezone(&Utc)
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A Q3 duty needing `required` records, quarterly lead of 7 days.
    fn q3(required: u32) -> DutyFacts {
        let period: Period = "2026-Q3".parse().unwrap();
        DutyFacts {
            waived: false,
            required,
            accepted_submitted_at: vec![],
            pending: 0,
            org_active_until: None,
            period,
            deadlines: deadlines(tz(), period, 0, 7),
        }
    }

    fn due() -> DateTime<Utc> {
        local(2026, 10, 1, 0, 0, 0)
    }

    #[test]
    fn waived_wins_over_everything() {
        let mut f = q3(1);
        f.waived = true;
        f.accepted_submitted_at = vec![local(2026, 8, 1, 9, 0, 0)];
        f.org_active_until = Some(day(2026, 8, 1));
        assert_eq!(f.status(due() + Duration::days(30)), Status::Waived);
    }

    #[test]
    fn fulfilled_when_the_nth_accepted_came_by_the_deadline() {
        let mut f = q3(2);
        f.accepted_submitted_at = vec![local(2026, 9, 30, 23, 59, 59), local(2026, 7, 3, 9, 0, 0)];
        assert_eq!(f.status(due() + Duration::days(100)), Status::Fulfilled);
    }

    #[test]
    fn a_record_submitted_at_the_deadline_itself_is_on_time() {
        let mut f = q3(1);
        f.accepted_submitted_at = vec![due()];
        assert_eq!(f.status(due()), Status::Fulfilled);
    }

    #[test]
    fn late_when_the_nth_accepted_came_after_the_deadline() {
        let mut f = q3(2);
        f.accepted_submitted_at = vec![local(2026, 7, 3, 9, 0, 0), due() + Duration::seconds(1)];
        assert_eq!(f.status(due() + Duration::days(1)), Status::Late);
    }

    #[test]
    fn extra_accepted_records_after_the_deadline_do_not_make_it_late() {
        let mut f = q3(1);
        f.accepted_submitted_at = vec![due() + Duration::days(3), local(2026, 9, 1, 9, 0, 0)];
        assert_eq!(f.status(due() + Duration::days(5)), Status::Fulfilled);
    }

    #[test]
    fn fulfilled_and_late_win_over_cancelled() {
        let mut f = q3(1);
        f.org_active_until = Some(day(2026, 8, 15));
        f.accepted_submitted_at = vec![local(2026, 8, 1, 9, 0, 0)];
        assert_eq!(f.status(due()), Status::Fulfilled);
    }

    #[test]
    fn closing_on_the_day_before_the_last_day_cancels() {
        let mut f = q3(1);
        f.org_active_until = Some(day(2026, 9, 29));
        assert_eq!(f.status(due() + Duration::days(1)), Status::Cancelled);
    }

    #[test]
    fn closing_on_the_last_day_does_not_cancel() {
        let mut f = q3(1);
        f.org_active_until = Some(day(2026, 9, 30));
        assert_eq!(f.status(due() - Duration::seconds(1)), Status::DueSoon);
        assert_eq!(f.status(due()), Status::Overdue);
    }

    #[test]
    fn cancelled_wins_over_submitted() {
        let mut f = q3(1);
        f.org_active_until = Some(day(2026, 7, 10));
        f.pending = 1;
        assert_eq!(f.status(local(2026, 7, 20, 0, 0, 0)), Status::Cancelled);
    }

    #[test]
    fn submitted_counts_accepted_and_pending_together() {
        let mut f = q3(2);
        f.accepted_submitted_at = vec![local(2026, 7, 3, 9, 0, 0)];
        f.pending = 1;
        assert_eq!(f.status(local(2026, 8, 1, 0, 0, 0)), Status::Submitted);
    }

    #[test]
    fn a_slow_review_makes_no_one_late() {
        let mut f = q3(1);
        f.pending = 1;
        assert_eq!(f.status(due() + Duration::days(40)), Status::Submitted);
    }

    #[test]
    fn one_second_before_the_deadline_is_due_soon_and_at_it_overdue() {
        let f = q3(1);
        assert_eq!(f.status(due() - Duration::seconds(1)), Status::DueSoon);
        assert_eq!(f.status(due()), Status::Overdue);
    }

    #[test]
    fn the_lead_window_opens_exactly_lead_days_before() {
        let f = q3(1);
        let opens = local(2026, 9, 24, 0, 0, 0);
        assert_eq!(f.status(opens - Duration::seconds(1)), Status::Open);
        assert_eq!(f.status(opens), Status::DueSoon);
    }

    #[test]
    fn not_enough_records_with_one_accepted_is_still_pending() {
        let mut f = q3(2);
        f.accepted_submitted_at = vec![local(2026, 7, 3, 9, 0, 0)];
        assert_eq!(f.status(local(2026, 8, 1, 0, 0, 0)), Status::Open);
        assert_eq!(f.status(due()), Status::Overdue);
    }

    #[test]
    fn a_returned_record_stops_counting_and_a_resubmission_is_judged_by_its_new_time() {
        // Submitted on time, returned after the deadline: the duty is overdue again.
        let mut f = q3(1);
        f.pending = 0;
        assert_eq!(f.status(due() + Duration::days(2)), Status::Overdue);
        // Resubmitted after the deadline: waiting for review, not late yet.
        f.pending = 1;
        assert_eq!(f.status(due() + Duration::days(3)), Status::Submitted);
        // Accepted: judged by the resubmission's time, so late.
        f.pending = 0;
        f.accepted_submitted_at = vec![due() + Duration::days(3)];
        assert_eq!(f.status(due() + Duration::days(4)), Status::Late);
    }

    #[test]
    fn year_and_half_year_deadlines() {
        let year: Period = "2026".parse().unwrap();
        let f = DutyFacts { period: year, deadlines: deadlines(tz(), year, 0, 30), ..q3(1) };
        assert_eq!(f.status(local(2026, 12, 1, 23, 59, 59)), Status::Open);
        assert_eq!(f.status(local(2026, 12, 2, 0, 0, 0)), Status::DueSoon);
        assert_eq!(f.status(local(2026, 12, 31, 23, 59, 59)), Status::DueSoon);
        assert_eq!(f.status(local(2027, 1, 1, 0, 0, 0)), Status::Overdue);
        let h1: Period = "2028-H1".parse().unwrap();
        let f = DutyFacts { period: h1, deadlines: deadlines(tz(), h1, 0, 14), ..q3(1) };
        assert_eq!(f.status(local(2028, 6, 16, 23, 59, 59)), Status::Open);
        assert_eq!(f.status(local(2028, 6, 17, 0, 0, 0)), Status::DueSoon);
        assert_eq!(f.status(local(2028, 7, 1, 0, 0, 0)), Status::Overdue);
    }

    #[test]
    fn leap_day_month_deadline() {
        let feb: Period = "2028-02".parse().unwrap();
        let f = DutyFacts { period: feb, deadlines: deadlines(tz(), feb, 0, 3), ..q3(1) };
        // Due at 1 March 00:00; three days' lead opens the window on 27 February.
        assert_eq!(f.status(local(2028, 2, 27, 0, 0, 0)), Status::DueSoon);
        assert_eq!(f.status(local(2028, 2, 26, 23, 59, 59)), Status::Open);
        assert_eq!(f.status(local(2028, 2, 29, 23, 59, 59)), Status::DueSoon);
        assert_eq!(f.status(local(2028, 3, 1, 0, 0, 0)), Status::Overdue);
    }

    #[test]
    fn grace_days_postpone_overdue() {
        let f = DutyFacts { deadlines: deadlines(tz(), "2026-Q3".parse().unwrap(), 5, 7), ..q3(1) };
        assert_eq!(f.status(due() + Duration::days(4)), Status::DueSoon);
        assert_eq!(f.status(due() + Duration::days(5)), Status::Overdue);
    }

    #[test]
    fn statuses_and_classes_have_stable_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for c in Settled::ALL {
            assert_eq!(c.as_str().parse::<Settled>(), Ok(c));
        }
    }
}

//! Who owes what (DESIGN.md "Liability"): an organisation owes a duty for a rule and a
//! period when the rule applies to its kind and subtree, is in force on the period's
//! first day, and the organisation is active that day. The database's `owed_duty` view
//! is the set-based form of the same rule; a test keeps the two equal.

use chrono::NaiveDate;

use super::period::Period;

/// An organisation as liability sees it.
#[derive(Debug, Clone)]
pub struct OrgFacts<'a> {
    pub kind: &'a str,
    pub active_from: NaiveDate,
    pub active_until: Option<NaiveDate>,
    /// Whether the organisation lies in the subtree the rule is installed for.
    pub in_rule_subtree: bool,
}

/// One version of a rule as liability sees it.
#[derive(Debug, Clone)]
pub struct VersionFacts<'a> {
    pub effective_from: NaiveDate,
    pub retired: bool,
    pub kinds: &'a [&'a str],
}

/// Whether an organisation is active on `day` (`active_until` is its last active day).
pub fn active_on(active_from: NaiveDate, active_until: Option<NaiveDate>, day: NaiveDate) -> bool {
    active_from <= day && active_until.is_none_or(|until| day <= until)
}

/// The version in force on `day`: the latest that took effect on or before it, unless
/// that one retired the rule.
pub fn version_in_force<'v, 'a>(versions: &'v [VersionFacts<'a>], day: NaiveDate) -> Option<&'v VersionFacts<'a>> {
    versions.iter().filter(|v| v.effective_from <= day).max_by_key(|v| v.effective_from).filter(|v| !v.retired)
}

/// Whether the organisation owes the rule's duty for `period`.
pub fn owes(org: &OrgFacts<'_>, versions: &[VersionFacts<'_>], period: Period) -> bool {
    let first = period.first_day();
    let Some(version) = version_in_force(versions, first) else { return false };
    org.in_rule_subtree && version.kinds.contains(&org.kind) && active_on(org.active_from, org.active_until, first)
}

/// Whether a leadership member with a role from `starts_on` to `ends_on` (inclusive) is
/// bound by a per-member rule for `period`: they hold the role on its first day.
pub fn member_bound(starts_on: NaiveDate, ends_on: Option<NaiveDate>, period: Period) -> bool {
    active_on(starts_on, ends_on, period.first_day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn branch(from: &str, until: Option<&str>) -> OrgFacts<'static> {
        OrgFacts { kind: "branch", active_from: d(from), active_until: until.map(d), in_rule_subtree: true }
    }

    const BRANCH: &[&str] = &["branch"];

    fn v(from: &str) -> VersionFacts<'static> {
        VersionFacts { effective_from: d(from), retired: false, kinds: BRANCH }
    }

    fn p(key: &str) -> Period {
        key.parse().unwrap()
    }

    #[test]
    fn an_organisation_founded_mid_quarter_owes_from_the_next_quarter() {
        let org = branch("2026-04-15", None);
        let rule = [v("2026-01-01")];
        assert!(!owes(&org, &rule, p("2026-Q2")));
        assert!(owes(&org, &rule, p("2026-Q3")));
        assert!(!owes(&org, &rule, p("2026")));
        assert!(owes(&org, &rule, p("2027")));
    }

    #[test]
    fn a_rule_owes_from_the_first_period_that_starts_after_it_takes_effect() {
        let org = branch("2000-01-01", None);
        let rule = [v("2026-02-10")];
        assert!(!owes(&org, &rule, p("2026-Q1")));
        assert!(owes(&org, &rule, p("2026-Q2")));
        assert!(owes(&org, &rule, p("2026-03")));
    }

    #[test]
    fn an_organisation_closed_on_the_first_day_still_owes_that_period() {
        let rule = [v("2026-01-01")];
        assert!(owes(&branch("2000-01-01", Some("2026-10-01")), &rule, p("2026-Q4")));
        assert!(!owes(&branch("2000-01-01", Some("2026-09-30")), &rule, p("2026-Q4")));
    }

    #[test]
    fn other_kinds_and_other_subtrees_owe_nothing() {
        let rule = [v("2026-01-01")];
        let committee = OrgFacts { kind: "committee", ..branch("2000-01-01", None) };
        assert!(!owes(&committee, &rule, p("2026-Q1")));
        let elsewhere = OrgFacts { in_rule_subtree: false, ..branch("2000-01-01", None) };
        assert!(!owes(&elsewhere, &rule, p("2026-Q1")));
    }

    #[test]
    fn each_period_is_judged_by_the_version_in_force_on_its_first_day() {
        let retired = VersionFacts { retired: true, ..v("2026-07-01") };
        let versions = [v("2026-01-01"), retired];
        let org = branch("2000-01-01", None);
        assert!(owes(&org, &versions, p("2026-Q2")));
        assert!(!owes(&org, &versions, p("2026-Q3")));
        let committee_only = VersionFacts { kinds: &["committee"], ..v("2026-04-02") };
        let versions = [v("2026-01-01"), committee_only];
        assert!(owes(&org, &versions, p("2026-Q2")), "Q2 began before the change");
        assert!(!owes(&org, &versions, p("2026-Q3")));
    }

    #[test]
    fn members_are_bound_when_they_hold_the_role_on_the_first_day() {
        assert!(member_bound(d("2025-06-01"), None, p("2026")));
        assert!(!member_bound(d("2026-01-02"), None, p("2026")));
        assert!(!member_bound(d("2025-01-01"), Some(d("2025-12-31")), p("2026")));
        assert!(member_bound(d("2025-01-01"), Some(d("2026-01-01")), p("2026")));
    }
}

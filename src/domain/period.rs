//! Periods and cadences: `2026`, `2026-H2`, `2026-Q3`, `2026-07`, as half-open local date ranges.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// How often a rule recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Year,
    Half,
    Quarter,
    Month,
}

impl Cadence {
    pub const ALL: [Cadence; 4] = [Cadence::Year, Cadence::Half, Cadence::Quarter, Cadence::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Year => "year",
            Cadence::Half => "half",
            Cadence::Quarter => "quarter",
            Cadence::Month => "month",
        }
    }

    /// Number of months in one period.
    pub fn months(self) -> u32 {
        match self {
            Cadence::Year => 12,
            Cadence::Half => 6,
            Cadence::Quarter => 3,
            Cadence::Month => 1,
        }
    }

    /// Number of periods in a year.
    pub fn per_year(self) -> u8 {
        (12 / self.months()) as u8
    }

    /// The deployment's default reminder lead, in days, before a setting overrides it.
    pub fn default_lead_days(self) -> u32 {
        match self {
            Cadence::Year => 30,
            Cadence::Half => 14,
            Cadence::Quarter => 7,
            Cadence::Month => 3,
        }
    }
}

impl FromStr for Cadence {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "year" => Ok(Cadence::Year),
            "half" => Ok(Cadence::Half),
            "quarter" => Ok(Cadence::Quarter),
            "month" => Ok(Cadence::Month),
            _ => Err(PeriodError::UnknownCadence),
        }
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a period key or cadence was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("a period key looks like 2026, 2026-H1, 2026-Q3 or 2026-07")]
    Malformed,
    #[error("the year must be between 1900 and 9999")]
    YearOutOfRange,
    #[error("a cadence is one of year, half, quarter, month")]
    UnknownCadence,
}

pub const MIN_YEAR: i32 = 1900;
pub const MAX_YEAR: i32 = 9999;

/// One period of a cadence: the year and the 1-based index within it.
/// Invalid periods cannot be built: every constructor checks the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    year: i32,
    cadence: Cadence,
    index: u8,
}

impl Period {
    pub fn new(cadence: Cadence, year: i32, index: u8) -> Result<Period, PeriodError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(PeriodError::YearOutOfRange);
        }
        if index == 0 || index > cadence.per_year() {
            return Err(PeriodError::Malformed);
        }
        Ok(Period { year, cadence, index })
    }

    /// The period of `cadence` that contains `date`.
    pub fn containing(cadence: Cadence, date: NaiveDate) -> Period {
        let index = ((date.month0() / cadence.months()) + 1) as u8;
        Period { year: date.year(), cadence, index }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn cadence(self) -> Cadence {
        self.cadence
    }

    pub fn index(self) -> u8 {
        self.index
    }

    /// The first day of the period.
    pub fn first_day(self) -> NaiveDate {
        let month = (u32::from(self.index) - 1) * self.cadence.months() + 1;
        NaiveDate::from_ymd_opt(self.year, month, 1).expect("a valid period starts on a valid date")
    }

    /// The first day after the period: its end, exclusive.
    pub fn end(self) -> NaiveDate {
        self.first_day() + Months::new(self.cadence.months())
    }

    /// The last day of the period, inclusive.
    pub fn last_day(self) -> NaiveDate {
        self.end().pred_opt().expect("a period's end has a day before it")
    }

    pub fn contains(self, date: NaiveDate) -> bool {
        self.first_day() <= date && date < self.end()
    }

    pub fn next(self) -> Period {
        Period::containing(self.cadence, self.end())
    }

    pub fn prev(self) -> Period {
        Period::containing(self.cadence, self.first_day().pred_opt().expect("periods start after year 1"))
    }

    /// Every period of this cadence from `self` up to and including `last`.
    pub fn through(self, last: Period) -> impl Iterator<Item = Period> {
        debug_assert_eq!(self.cadence, last.cadence);
        std::iter::successors(Some(self), |p| Some(p.next())).take_while(move |p| *p <= last)
    }

    /// The cadence a key denotes, read from its shape alone.
    pub fn cadence_of_key(key: &str) -> Result<Cadence, PeriodError> {
        key.parse::<Period>().map(Period::cadence)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cadence {
            Cadence::Year => write!(f, "{}", self.year),
            Cadence::Half => write!(f, "{}-H{}", self.year, self.index),
            Cadence::Quarter => write!(f, "{}-Q{}", self.year, self.index),
            Cadence::Month => write!(f, "{}-{:02}", self.year, self.index),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let (year, rest) = match key.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (key, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PeriodError::Malformed);
        }
        let year: i32 = year.parse().map_err(|_| PeriodError::Malformed)?;
        let digits = |s: &str, len: usize| -> Result<u8, PeriodError> {
            if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| PeriodError::Malformed)
            } else {
                Err(PeriodError::Malformed)
            }
        };
        match rest {
            None => Period::new(Cadence::Year, year, 1),
            Some(r) if r.starts_with('H') => Period::new(Cadence::Half, year, digits(&r[1..], 1)?),
            Some(r) if r.starts_with('Q') => Period::new(Cadence::Quarter, year, digits(&r[1..], 1)?),
            Some(r) => Period::new(Cadence::Month, year, digits(r, 2)?),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn keys_parse_and_format_for_every_cadence() {
        for (key, cadence, first, end) in [
            ("2026", Cadence::Year, d(2026, 1, 1), d(2027, 1, 1)),
            ("2026-H1", Cadence::Half, d(2026, 1, 1), d(2026, 7, 1)),
            ("2026-H2", Cadence::Half, d(2026, 7, 1), d(2027, 1, 1)),
            ("2026-Q3", Cadence::Quarter, d(2026, 7, 1), d(2026, 10, 1)),
            ("2026-Q4", Cadence::Quarter, d(2026, 10, 1), d(2027, 1, 1)),
            ("2026-02", Cadence::Month, d(2026, 2, 1), d(2026, 3, 1)),
            ("2026-12", Cadence::Month, d(2026, 12, 1), d(2027, 1, 1)),
        ] {
            let p: Period = key.parse().unwrap();
            assert_eq!(p.cadence(), cadence, "{key}");
            assert_eq!(p.first_day(), first, "{key}");
            assert_eq!(p.end(), end, "{key}");
            assert_eq!(p.to_string(), key);
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in [
            "",
            "26",
            "2026-Q0",
            "2026-Q5",
            "2026-H3",
            "2026-H0",
            "2026-13",
            "2026-00",
            "2026-1",
            "2026-001",
            "2026-q1",
            "2026-Q1 ",
            " 2026",
            "20266",
            "2026-",
            "2026-Q",
            "2026-H",
            "2026-Q01",
            "abcd",
            "2026-W01",
            "+026",
            "0999",
            "2026-Q1-1",
        ] {
            assert!(key.parse::<Period>().is_err(), "{key:?} should be refused");
        }
    }

    #[test]
    fn leap_years_end_february_on_the_29th() {
        assert_eq!("2028-02".parse::<Period>().unwrap().last_day(), d(2028, 2, 29));
        assert_eq!("2026-02".parse::<Period>().unwrap().last_day(), d(2026, 2, 28));
        assert_eq!("2100-02".parse::<Period>().unwrap().last_day(), d(2100, 2, 28));
        assert_eq!("2000-02".parse::<Period>().unwrap().last_day(), d(2000, 2, 29));
        assert_eq!(Period::containing(Cadence::Quarter, d(2028, 2, 29)).to_string(), "2028-Q1");
    }

    #[test]
    fn year_and_half_year_boundaries() {
        assert_eq!(Period::containing(Cadence::Half, d(2026, 6, 30)).to_string(), "2026-H1");
        assert_eq!(Period::containing(Cadence::Half, d(2026, 7, 1)).to_string(), "2026-H2");
        assert_eq!(Period::containing(Cadence::Year, d(2026, 12, 31)).to_string(), "2026");
        assert_eq!("2026-H2".parse::<Period>().unwrap().next().to_string(), "2027-H1");
        assert_eq!("2027-Q1".parse::<Period>().unwrap().prev().to_string(), "2026-Q4");
        assert_eq!("2026-12".parse::<Period>().unwrap().next().to_string(), "2027-01");
    }

    #[test]
    fn through_lists_each_period_once() {
        let q1: Period = "2026-Q1".parse().unwrap();
        let q4: Period = "2026-Q4".parse().unwrap();
        let keys: Vec<String> = q1.through(q4).map(|p| p.to_string()).collect();
        assert_eq!(keys, ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]);
        assert_eq!(q4.through(q1).count(), 0);
    }

    fn any_cadence() -> impl Strategy<Value = Cadence> {
        prop::sample::select(Cadence::ALL.to_vec())
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (1901i32..9998, 1u32..=366).prop_map(|(y, doy)| {
            NaiveDate::from_yo_opt(y, doy).unwrap_or_else(|| NaiveDate::from_yo_opt(y, 365).unwrap())
        })
    }

    proptest! {
        #[test]
        fn the_containing_period_contains_the_date(c in any_cadence(), date in any_date()) {
            let p = Period::containing(c, date);
            prop_assert!(p.contains(date));
            prop_assert!(p.first_day() <= date && date <= p.last_day());
            prop_assert!(!p.next().contains(date));
            prop_assert!(!p.prev().contains(date));
        }

        #[test]
        fn keys_round_trip(c in any_cadence(), date in any_date()) {
            let p = Period::containing(c, date);
            prop_assert_eq!(p.to_string().parse::<Period>(), Ok(p));
        }

        #[test]
        fn periods_tile_time_without_gaps(c in any_cadence(), date in any_date()) {
            let p = Period::containing(c, date);
            prop_assert_eq!(p.next().first_day(), p.end());
            prop_assert_eq!(p.next().prev(), p);
            prop_assert_eq!(Period::containing(c, p.last_day()), p);
            prop_assert_eq!(Period::containing(c, p.end()), p.next());
        }

        #[test]
        fn every_period_nests_in_its_year(c in any_cadence(), date in any_date()) {
            let p = Period::containing(c, date);
            let y = Period::containing(Cadence::Year, date);
            prop_assert!(y.first_day() <= p.first_day() && p.end() <= y.end());
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,12}") {
            let _ = s.parse::<Period>();
        }
    }
}

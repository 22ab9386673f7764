//! Dates, instants and periods written the way a Chinese office writes them (and the
//! English equivalents): 2026年3月26日, 2026年第三季度, 2026年上半年.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::period::{Cadence, Period};
use crate::web::i18n::{Locale, Tr};

const ZH_NUM: [&str; 13] = ["〇", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二"];
const EN_MONTH: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const EN_MONTH_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// 2026年3月26日 / 26 Mar 2026.
pub fn date(t: &Tr, d: NaiveDate) -> String {
    match t.locale {
        Locale::Zh => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
        Locale::En => format!("{} {} {}", d.day(), EN_MONTH[d.month0() as usize], d.year()),
    }
}

/// 3月26日 / 26 Mar.
pub fn short_date(t: &Tr, d: NaiveDate) -> String {
    match t.locale {
        Locale::Zh => format!("{}月{}日", d.month(), d.day()),
        Locale::En => format!("{} {}", d.day(), EN_MONTH[d.month0() as usize]),
    }
}

/// 2026年3月26日 16:05 / 26 Mar 2026 16:05, in the deployment's zone.
pub fn instant(t: &Tr, tz: Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    format!("{} {}", date(t, local.date_naive()), local.format("%H:%M"))
}

/// 2026年度, 2026年上半年, 2026年第三季度, 2026年3月 / 2026, H1 2026, Q3 2026, March 2026.
pub fn period(t: &Tr, p: Period) -> String {
    let (y, i) = (p.year(), usize::from(p.index()));
    match (t.locale, p.cadence()) {
        (Locale::Zh, Cadence::Year) => format!("{y}年度"),
        (Locale::Zh, Cadence::Half) => format!("{y}年{}", if i == 1 { "上半年" } else { "下半年" }),
        (Locale::Zh, Cadence::Quarter) => format!("{y}年第{}季度", ZH_NUM[i]),
        (Locale::Zh, Cadence::Month) => format!("{y}年{i}月"),
        (Locale::En, Cadence::Year) => format!("{y}"),
        (Locale::En, Cadence::Half) => format!("H{i} {y}"),
        (Locale::En, Cadence::Quarter) => format!("Q{i} {y}"),
        (Locale::En, Cadence::Month) => format!("{} {y}", EN_MONTH_LONG[i - 1]),
    }
}

/// A period key as people read it; a malformed key shows as it is.
pub fn period_key(t: &Tr, key: &str) -> String {
    key.parse::<Period>().map(|p| period(t, p)).unwrap_or_else(|_| key.to_owned())
}

/// 第三季度 / Q3 — the period without its year, for tables inside one year.
pub fn period_short(t: &Tr, p: Period) -> String {
    let i = usize::from(p.index());
    match (t.locale, p.cadence()) {
        (Locale::Zh, Cadence::Year) => "全年".to_owned(),
        (Locale::Zh, Cadence::Half) => (if i == 1 { "上半年" } else { "下半年" }).to_owned(),
        (Locale::Zh, Cadence::Quarter) => format!("第{}季度", ZH_NUM[i]),
        (Locale::Zh, Cadence::Month) => format!("{i}月"),
        (Locale::En, Cadence::Year) => "Year".to_owned(),
        (Locale::En, Cadence::Half) => format!("H{i}"),
        (Locale::En, Cadence::Quarter) => format!("Q{i}"),
        (Locale::En, Cadence::Month) => EN_MONTH[i - 1].to_owned(),
    }
}

/// A month heading: 2026年11月 / November 2026.
pub fn month(t: &Tr, year: i32, month: u32) -> String {
    match t.locale {
        Locale::Zh => format!("{year}年{month}月"),
        Locale::En => format!("{} {year}", EN_MONTH_LONG[(month.clamp(1, 12) - 1) as usize]),
    }
}

/// How long until, or since, a day, in whole days, months when far: "还剩 3 个月",
/// "还剩 5 天", "今天截止" / "3 months left", "5 days left", "due today".
pub fn time_left(t: &Tr, today: NaiveDate, due_day: NaiveDate) -> String {
    let days = (due_day - today).num_days();
    if days <= 0 {
        return t.t("time.due_today").to_owned();
    }
    if days >= 60 {
        let months = days / 30;
        return t.f1("time.months_left", months);
    }
    t.f1("time.days_left", days)
}

/// "已逾期 5 天" / "5 days overdue", counted from the last day one could still submit.
pub fn overdue_by(t: &Tr, today: NaiveDate, last_day: NaiveDate) -> String {
    let days = (today - last_day).num_days().max(1);
    t.f1("time.overdue_days", days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh() -> Tr {
        Tr::new(Locale::Zh)
    }

    fn en() -> Tr {
        Tr::new(Locale::En)
    }

    #[test]
    fn periods_read_as_an_office_writes_them() {
        let p = |k: &str| k.parse::<Period>().unwrap();
        assert_eq!(period(&zh(), p("2026")), "2026年度");
        assert_eq!(period(&zh(), p("2026-H1")), "2026年上半年");
        assert_eq!(period(&zh(), p("2026-Q3")), "2026年第三季度");
        assert_eq!(period(&zh(), p("2026-11")), "2026年11月");
        assert_eq!(period(&en(), p("2026-Q3")), "Q3 2026");
        assert_eq!(period(&en(), p("2026-H2")), "H2 2026");
        assert_eq!(period(&en(), p("2026-02")), "February 2026");
    }

    #[test]
    fn dates_read_as_an_office_writes_them() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 6).unwrap();
        assert_eq!(date(&zh(), d), "2026年3月6日");
        assert_eq!(date(&en(), d), "6 Mar 2026");
        assert_eq!(short_date(&zh(), d), "3月6日");
    }
}

//! The application's clock. Every instant the portal records comes from here, never from
//! PostgreSQL's `now()`, so that `ZRZ_NOW` and `tick --now` hold everywhere.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
enum Setting {
    /// Real time shifted by a fixed offset.
    Offset(Duration),
    /// Always the same instant.
    Frozen(DateTime<Utc>),
}

/// Real time, shifted or frozen. Clones share the setting, so a test can move the clock
/// of a running server.
#[derive(Debug, Clone)]
pub struct Clock(Arc<RwLock<Setting>>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(RwLock::new(Setting::Offset(Duration::zero()))))
    }

    /// A clock that reads `start` now and runs on in real time (`ZRZ_NOW`).
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock(Arc::new(RwLock::new(Setting::Offset(start - Utc::now()))))
    }

    /// A clock that always reads `at` (one scheduler pass, tests).
    pub fn frozen_at(at: DateTime<Utc>) -> Clock {
        Clock(Arc::new(RwLock::new(Setting::Frozen(at))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        let setting = *self.0.read().unwrap_or_else(|e| e.into_inner());
        match setting {
            Setting::Offset(offset) => Utc::now() + offset,
            Setting::Frozen(at) => at,
        }
    }

    /// Freeze the clock at `at` (tests).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Setting::Frozen(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_starts_at_its_instant_and_runs_on() {
        let start = DateTime::parse_from_rfc3339("2026-03-26T16:00:00+08:00").unwrap().to_utc();
        let clock = Clock::starting_at(start);
        let first = clock.now();
        assert!((first - start).num_seconds().abs() < 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() > first);
    }

    #[test]
    fn clones_share_a_frozen_setting() {
        let at = DateTime::parse_from_rfc3339("2026-10-01T00:00:00+08:00").unwrap().to_utc();
        let clock = Clock::system();
        let other = clock.clone();
        clock.set(at);
        assert_eq!(other.now(), at);
    }
}

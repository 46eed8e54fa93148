//! When `coexist daemon` runs an organisation's sync: cron expressions (the
//! `cron` crate) read in the organisation's time zone, a full read when the
//! full-read schedule is due, and a small random delay so that many
//! organisations do not all start in the same second.

use std::hash::BuildHasher;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The default sync schedule: every 15 minutes.
pub const DEFAULT_SYNC: &str = "*/15 * * * *";
/// The default full-read schedule: nightly at 02:30.
pub const DEFAULT_FULL_READ: &str = "30 2 * * *";

/// A cron expression, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// As written in the configuration.
    pub text: String,
    cron: cron::Schedule,
}

impl Schedule {
    /// Parses a cron expression: five fields as crontab writes them
    /// (minute hour day-of-month month day-of-week), six or seven with a
    /// leading seconds field (and a trailing year), or `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`. Days of the week are
    /// best named (`Mon-Fri`): numbered, the `cron` crate counts Sunday as 1.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let trimmed = text.trim();
        let fields = trimmed.split_whitespace().count();
        let expression = if fields == 5 {
            format!("0 {trimmed}")
        } else {
            trimmed.to_string()
        };
        if !trimmed.starts_with('@') && !(5..=7).contains(&fields) {
            return Err(format!(
                "`{text}` is not a cron expression: expected five fields (minute hour day-of-month month day-of-week, like \"*/15 * * * *\"), six with a leading seconds field, or @hourly/@daily/@weekly"
            ));
        }
        let cron: cron::Schedule = expression
            .parse()
            .map_err(|e| format!("`{text}` is not a cron expression: {e}"))?;
        Ok(Schedule {
            text: trimmed.to_string(),
            cron,
        })
    }

    /// The first time strictly after `after` at which the schedule fires,
    /// reading the expression in `zone`.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .after(&after.with_timezone(&zone))
            .next()
            .map(|at| at.with_timezone(&Utc))
    }
}

/// An organisation's schedules.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// When a sync runs.
    pub sync: Schedule,
    /// When a sync reads every system in full (ignoring the cursors).
    pub full_read: Schedule,
    /// The time zone both are read in.
    pub zone: Tz,
    /// Each run starts up to this long after its time, at random.
    pub jitter: Duration,
}

/// The next run of an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    /// When, before the random delay.
    pub at: DateTime<Utc>,
    /// Whether it reads every system in full.
    pub full_read: bool,
}

impl Timing {
    /// The next run after `now`: whichever schedule fires first; when both
    /// fire at once, one run with a full read.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<NextRun> {
        let sync = self.sync.next_after(now, self.zone);
        let full = self.full_read.next_after(now, self.zone);
        match (sync, full) {
            (Some(sync), Some(full)) if full <= sync => Some(NextRun {
                at: full,
                full_read: true,
            }),
            (Some(sync), _) => Some(NextRun {
                at: sync,
                full_read: false,
            }),
            (None, Some(full)) => Some(NextRun {
                at: full,
                full_read: true,
            }),
            (None, None) => None,
        }
    }

    /// A random delay from zero to `jitter`.
    pub fn delay(&self) -> Duration {
        let millis = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        // A fresh RandomState is seeded from the system's randomness.
        let random = std::collections::hash_map::RandomState::new().hash_one(Utc::now());
        Duration::from_millis(random % (millis + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn timing(sync: &str, full: &str, zone: Tz) -> Timing {
        Timing {
            sync: Schedule::parse(sync).unwrap(),
            full_read: Schedule::parse(full).unwrap(),
            zone,
            jitter: Duration::ZERO,
        }
    }

    #[test]
    fn the_default_sync_runs_every_fifteen_minutes() {
        let schedule = Schedule::parse(DEFAULT_SYNC).unwrap();
        let next = schedule.next_after(at("2026-12-03T10:07:12Z"), Tz::UTC);
        assert_eq!(next, Some(at("2026-12-03T10:15:00Z")));
        let next = schedule.next_after(at("2026-12-03T10:15:00Z"), Tz::UTC);
        assert_eq!(next, Some(at("2026-12-03T10:30:00Z")));
    }

    #[test]
    fn a_seconds_field_and_shorthands_are_understood() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.next_after(at("2026-12-03T10:07:12Z"), Tz::UTC),
            Some(at("2026-12-03T10:07:13Z"))
        );
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-03T10:07:12Z"), Tz::UTC),
            Some(at("2026-12-04T00:00:00Z"))
        );
    }

    #[test]
    fn what_is_not_a_cron_expression_is_refused_with_an_example() {
        let error = Schedule::parse("every 15 minutes").unwrap_err();
        assert!(error.contains("*/15 * * * *"), "{error}");
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* *").is_err());
    }

    #[test]
    fn schedules_are_read_in_the_time_zone() {
        // 02:30 in Paris is 01:30 UTC in winter, 00:30 UTC in summer.
        let nightly = Schedule::parse(DEFAULT_FULL_READ).unwrap();
        assert_eq!(
            nightly.next_after(at("2026-12-03T10:00:00Z"), chrono_tz::Europe::Paris),
            Some(at("2026-12-04T01:30:00Z"))
        );
        assert_eq!(
            nightly.next_after(at("2026-07-03T10:00:00Z"), chrono_tz::Europe::Paris),
            Some(at("2026-07-04T00:30:00Z"))
        );
    }

    #[test]
    fn a_full_read_due_with_a_sync_is_one_run_that_reads_in_full() {
        let timing = timing("*/15 * * * *", "30 2 * * *", Tz::UTC);
        assert_eq!(
            timing.next_after(at("2026-12-03T02:20:00Z")),
            Some(NextRun {
                at: at("2026-12-03T02:30:00Z"),
                full_read: true
            })
        );
        assert_eq!(
            timing.next_after(at("2026-12-03T02:30:00Z")),
            Some(NextRun {
                at: at("2026-12-03T02:45:00Z"),
                full_read: false
            })
        );
    }

    #[test]
    fn the_random_delay_stays_within_the_jitter() {
        let mut timing = timing("* * * * *", "@daily", Tz::UTC);
        assert_eq!(timing.delay(), Duration::ZERO);
        timing.jitter = Duration::from_secs(2);
        for _ in 0..100 {
            assert!(timing.delay() <= Duration::from_secs(2));
        }
    }
}

//! Schedules: a cron pattern in a time zone that makes one asynchronous call of a function
//! per tick. The store keeps each schedule's next tick; whoever advances it (one compare-and-
//! swap) makes that tick's call, so a tick fires once however many nodes look.

use chrono::{DateTime, SubsecRound, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A function's schedule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: Uuid,
    pub function: String,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.
    pub cron: String,
    /// An IANA time zone name (`UTC`, `Europe/Paris`): the cron's fields are read in it.
    pub timezone: String,
    /// The event each call gets, as JSON text.
    pub input: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// The next tick to fire (`None` while disabled).
    pub next_run: Option<DateTime<Utc>>,
    /// The last tick fired.
    pub last_run: Option<DateTime<Utc>>,
}

/// What came of firing a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// This caller advanced the schedule and queued the tick's call (one commit).
    Fired,
    /// Someone else fired this tick first (another node), or the schedule changed or went.
    Taken,
    /// The asynchronous queue is full: the tick was advanced past without a call.
    Skipped,
}

/// A parsed, checked cron pattern in its time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    tz: chrono_tz::Tz,
}

/// How late a tick may still be fired as itself (see [`CronSpec::following`]).
pub const LATE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest cron text accepted.
pub const MAX_CRON_LEN: usize = 200;

impl CronSpec {
    /// Parses `pattern` (5 fields, or 6 with seconds first; no years) in `timezone`, and
    /// checks it fires at all (`0 0 30 2 *` never does).
    pub fn parse(pattern: &str, timezone: &str) -> Result<CronSpec, String> {
        if pattern.len() > MAX_CRON_LEN {
            return Err(format!("at most {MAX_CRON_LEN} characters"));
        }
        let fields = pattern.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!("expected 5 fields (minute hour day month weekday) or 6 with seconds first, got {fields}"));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| e.to_string())?;
        let tz: chrono_tz::Tz = timezone.parse().map_err(|_| format!("unknown time zone `{timezone}` (an IANA name such as UTC or Europe/Paris)"))?;
        let spec = CronSpec { cron, tz };
        if spec.next_after(Utc::now()).is_none() {
            return Err("this pattern never fires".into());
        }
        Ok(spec)
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds; croner would keep the start's fraction of a second.
        let t = t.trunc_subsecs(0);
        self.cron.find_next_occurrence(&t.with_timezone(&self.tz), false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The tick to fire after `tick`, given that it is `now`: the one following `tick` while it
    /// is less than [`LATE_GRACE`] old (a busy node catches up a tick or two, each once); older
    /// ticks were missed (fnbox was down) and are not made up one by one: the next is then the
    /// first after `now`, so a stop costs at most the one late fire of the tick that was due.
    pub fn following(&self, tick: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let grace = chrono::Duration::from_std(LATE_GRACE).unwrap_or_default();
        match self.next_after(tick) {
            Some(n) if n > now - grace => Some(n),
            _ => self.next_after(now),
        }
    }
}

impl Schedule {
    /// A new schedule, its first tick the first after `now` (none while disabled).
    pub fn new(function: &str, cron: &str, timezone: &str, input: String, enabled: bool, now: DateTime<Utc>) -> Result<Schedule, String> {
        let spec = CronSpec::parse(cron, timezone)?;
        Ok(Schedule {
            id: Uuid::now_v7(),
            function: function.to_owned(),
            cron: cron.trim().to_owned(),
            timezone: timezone.to_owned(),
            input,
            enabled,
            created_at: now,
            next_run: if enabled { spec.next_after(now) } else { None },
            last_run: None,
        })
    }

    pub fn spec(&self) -> Result<CronSpec, String> {
        CronSpec::parse(&self.cron, &self.timezone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_fields_are_read_as_cron_reads_them() {
        let every_second = CronSpec::parse("* * * * * *", "UTC").expect("6 fields");
        assert_eq!(every_second.next_after(at("2026-01-01T00:00:00.5Z")), Some(at("2026-01-01T00:00:01Z")));
        let five = CronSpec::parse("*/15 * * * *", "UTC").expect("5 fields");
        assert_eq!(five.next_after(at("2026-01-01T00:07:00Z")), Some(at("2026-01-01T00:15:00Z")));
        // Day of week as POSIX cron reads it: 0 (and 7) is Sunday; 2026-01-04 is a Sunday.
        let sunday = CronSpec::parse("0 12 * * 0", "UTC").expect("weekday");
        assert_eq!(sunday.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-04T12:00:00Z")));
        for bad in ["", "* * * *", "* * * * * * *", "61 * * * *", "* * * * * 2026", "nonsense x y z w"] {
            assert!(CronSpec::parse(bad, "UTC").is_err(), "{bad:?} is refused");
        }
        assert!(CronSpec::parse("0 0 30 2 *", "UTC").is_err(), "never fires");
        assert!(CronSpec::parse(&"* ".repeat(200), "UTC").is_err());
    }

    #[test]
    fn the_time_zone_is_where_the_fields_are_read() {
        let nine = CronSpec::parse("0 9 * * *", "Europe/Paris").expect("tz");
        // Paris is UTC+1 in January and UTC+2 in July.
        assert_eq!(nine.next_after(at("2026-01-10T00:00:00Z")), Some(at("2026-01-10T08:00:00Z")));
        assert_eq!(nine.next_after(at("2026-07-10T00:00:00Z")), Some(at("2026-07-10T07:00:00Z")));
        assert!(CronSpec::parse("0 9 * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn missed_ticks_are_made_up_once_not_one_by_one() {
        let s = CronSpec::parse("* * * * * *", "UTC").expect("spec");
        let tick = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time");
        // On time, or a little late: the next second, even if it is already due.
        assert_eq!(s.following(tick, tick + chrono::Duration::milliseconds(300)), Some(tick + chrono::Duration::seconds(1)));
        assert_eq!(s.following(tick, tick + chrono::Duration::milliseconds(1500)), Some(tick + chrono::Duration::seconds(1)));
        // An hour down: the tick due fires once, then the first after now.
        let now = tick + chrono::Duration::seconds(3600) + chrono::Duration::milliseconds(200);
        assert_eq!(s.following(tick, now), Some(tick + chrono::Duration::seconds(3601)));
    }

    #[test]
    fn a_disabled_schedule_has_no_next_run() {
        let now = Utc::now();
        let on = Schedule::new("f", "*/5 * * * *", "UTC", "{}".into(), true, now).expect("schedule");
        assert!(on.next_run.is_some_and(|n| n > now));
        let off = Schedule::new("f", "*/5 * * * *", "UTC", "{}".into(), false, now).expect("schedule");
        assert_eq!(off.next_run, None);
    }
}

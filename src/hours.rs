//! Business hours and holidays: when a schedule is open, in its own time zone.
//!
//! ```toml
//! [hours.office]
//! timezone = "America/New_York"
//! open = ["mon-fri 09:00-17:00", "sat 10:00-13:30"]
//! closed = ["2026-12-25", "2027-01-01"]   # whole days, in that time zone
//! ```
//!
//! Pure: [`Schedule::is_open`] takes the time as Unix milliseconds; the caller owns the
//! clock. Daylight-saving changes are the time zone database's (jiff, bundled).

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// One opening rule: these weekdays, from `start` to `end` minutes after midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Window {
    days: [bool; 7],
    start: u16,
    end: u16,
}

/// A named schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    tz: TimeZone,
    open: Vec<Window>,
    closed: Vec<Date>,
}

fn weekday(s: &str) -> Option<usize> {
    let i = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| s.eq_ignore_ascii_case(d))?;
    Some(i)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// Parses `"mon-fri 09:00-17:00"`, `"sun 00:00-24:00"`, `"sat,sun 10:00-12:00"`.
fn window(spec: &str) -> Result<Window, String> {
    let bad = || format!("`{spec}` is not DAYS HH:MM-HH:MM (e.g. \"mon-fri 09:00-17:00\")");
    let (days_s, time_s) = spec.trim().split_once(' ').ok_or_else(bad)?;
    let mut days = [false; 7];
    for part in days_s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (weekday(a).ok_or_else(bad)?, weekday(b).ok_or_else(bad)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[weekday(part).ok_or_else(bad)?] = true,
        }
    }
    let (a, b) = time_s.trim().split_once('-').ok_or_else(bad)?;
    let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
    if start >= end {
        return Err(format!("`{spec}`: the window closes before it opens"));
    }
    Ok(Window { days, start, end })
}

impl Schedule {
    /// Builds a schedule; the error names the bad part.
    pub fn new(timezone: &str, open: &[String], closed: &[String]) -> Result<Self, String> {
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!("unknown time zone `{timezone}` (use an IANA name such as \"Europe/Paris\")")
        })?;
        let open = open
            .iter()
            .map(|s| window(s))
            .collect::<Result<Vec<_>, _>>()?;
        let closed = closed
            .iter()
            .map(|d| {
                d.parse::<Date>()
                    .map_err(|_| format!("`{d}` is not a date YYYY-MM-DD"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { tz, open, closed })
    }

    /// Whether the schedule is open at `unix_ms`.
    pub fn is_open(&self, unix_ms: i64) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(unix_ms) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        if self.closed.contains(&local.date()) {
            return false;
        }
        let day = match local.weekday() {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        };
        let min = local.hour() as u16 * 60 + local.minute() as u16;
        self.open
            .iter()
            .any(|w| w.days[day] && (w.start..w.end).contains(&min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn office_hours_in_new_york_across_daylight_saving() {
        let s = Schedule::new(
            "America/New_York",
            &["mon-fri 09:00-17:00".into(), "sat 10:00-13:30".into()],
            &["2026-12-25".into()],
        )
        .unwrap();
        // Monday 2026-11-23 09:30 in New York (EST, UTC-5) is 14:30 UTC.
        assert!(s.is_open(ms("2026-11-23T14:30:00Z")));
        assert!(!s.is_open(ms("2026-11-23T13:59:00Z")), "08:59 local");
        assert!(
            !s.is_open(ms("2026-11-23T22:00:00Z")),
            "17:00 local: closed"
        );
        // In July (EDT, UTC-4) 09:30 local is 13:30 UTC.
        assert!(s.is_open(ms("2026-07-06T13:30:00Z")));
        // Saturday morning, Sunday, and Christmas Day (a Friday).
        assert!(s.is_open(ms("2026-11-28T15:00:00Z")));
        assert!(!s.is_open(ms("2026-11-29T15:00:00Z")));
        assert!(!s.is_open(ms("2026-12-25T15:00:00Z")));
    }

    #[test]
    fn wrapping_day_ranges_and_bad_specs() {
        let s = Schedule::new("UTC", &["fri-mon 00:00-24:00".into()], &[]).unwrap();
        assert!(s.is_open(ms("2026-11-22T12:00:00Z")), "Sunday");
        assert!(s.is_open(ms("2026-11-23T23:59:00Z")), "Monday");
        assert!(!s.is_open(ms("2026-11-24T12:00:00Z")), "Tuesday");
        for bad in [
            "mon-fri",
            "funday 09:00-17:00",
            "mon 9-17",
            "mon 17:00-09:00",
            "mon 25:00-26:00",
            "mon 09:00-24:30",
            "mon 09:75-10:00",
            "mon 09:00-10:60",
            "mon 9:00",
        ] {
            assert!(Schedule::new("UTC", &[bad.into()], &[]).is_err(), "{bad}");
        }
        assert!(Schedule::new("Mars/Olympus", &[], &[]).is_err());
        assert!(Schedule::new("UTC", &[], &["25-12-2026".into()]).is_err());
    }

    #[test]
    fn window_edges_are_exact_to_the_minute() {
        let s = Schedule::new(
            "UTC",
            &["tue 09:30-17:45".into(), "wed 00:00-00:01".into()],
            &[],
        )
        .unwrap();
        // Tuesday 2026-11-24.
        assert!(!s.is_open(ms("2026-11-24T09:29:59Z")));
        assert!(s.is_open(ms("2026-11-24T09:30:00Z")));
        assert!(s.is_open(ms("2026-11-24T17:44:59Z")));
        assert!(
            !s.is_open(ms("2026-11-24T17:45:00Z")),
            "the end is exclusive"
        );
        assert!(s.is_open(ms("2026-11-25T00:00:30Z")));
        assert!(!s.is_open(ms("2026-11-25T00:01:00Z")));
    }

    #[test]
    fn business_hours_on_the_days_the_clocks_change() {
        // Paris: on Sunday 2026-03-29 02:00 CET becomes 03:00 CEST; on Sunday 2026-10-25
        // 03:00 CEST becomes 02:00 CET. Opening hours follow the wall clock both days.
        let s = Schedule::new(
            "Europe/Paris",
            &["sun 09:00-17:00".into(), "sat 01:30-04:00".into()],
            &[],
        )
        .unwrap();
        assert!(!s.is_open(ms("2026-03-29T06:59:00Z")), "08:59 CEST");
        assert!(s.is_open(ms("2026-03-29T07:00:00Z")), "09:00 CEST");
        assert!(s.is_open(ms("2026-03-29T14:59:00Z")), "16:59 CEST");
        assert!(!s.is_open(ms("2026-03-29T15:00:00Z")), "17:00 CEST");
        assert!(!s.is_open(ms("2026-10-25T07:59:00Z")), "08:59 CET");
        assert!(s.is_open(ms("2026-10-25T08:00:00Z")), "09:00 CET");
        assert!(s.is_open(ms("2026-10-25T15:59:00Z")), "16:59 CET");
        assert!(!s.is_open(ms("2026-10-25T16:00:00Z")), "17:00 CET");
        // The night before each change is an ordinary Saturday night.
        assert!(s.is_open(ms("2026-03-28T00:30:00Z")), "01:30 CET");
        assert!(!s.is_open(ms("2026-03-28T03:00:00Z")), "04:00 CET");
    }
}

//! Standard 5-field cron schedules and descriptors as upstream's CronJob controller reads them
//! (robfig/cron v3 `ParseStandard`): the library's error texts, its day-of-month/day-of-week
//! rule, and its `Next` walk in a time zone.

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned, civil};

/// robfig marks a field written as `*` or `?`: day matching then needs both day fields.
const STAR_BIT: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first name (months start at 1, days at 0).
    names_base: u32,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
        names_base: 0,
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
        names_base: 0,
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
        names_base: 0,
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
        names_base: 1,
    },
    Bounds {
        min: 0,
        max: 6,
        names: DAYS,
        names_base: 0,
    },
];

/// A parsed schedule: either bit sets per field (seconds are always 0) or `@every` delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// `TZ=` / `CRON_TZ=` prefix of the spec, if any.
        location: Option<String>,
    },
    /// `@every <duration>`: whole seconds, at least one.
    Every { seconds: i64 },
}

fn all_bits(bounds: &Bounds) -> u64 {
    bits(bounds.min, bounds.max, 1) | STAR_BIT
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut out = 0u64;
    let mut i = min;
    while i <= max {
        out |= 1 << i;
        i += step;
    }
    out
}

/// Checks a schedule; the error is the library's message.
pub fn parse_schedule(spec: &str) -> Result<(), String> {
    parse(spec).map(|_| ())
}

/// Parses a schedule as `cron.ParseStandard` does.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    let mut spec = spec.trim();
    let mut location = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some((prefix, rest)) = spec.split_once(' ') else {
            return Err(format!("provided bad location {spec}: unknown time zone"));
        };
        let name = prefix.split_once('=').map(|(_, n)| n).unwrap_or_default();
        if load_time_zone(name).is_none() {
            return Err(format!(
                "provided bad location {name}: unknown time zone {name}"
            ));
        }
        location = Some(name.to_string());
        spec = rest.trim();
    }
    if let Some(rest) = spec.strip_prefix('@') {
        let [minute, hour, dom, month, dow] = &FIELDS;
        let one = |b: &Bounds| 1u64 << b.min;
        let fields = |minute, hour, dom, month, dow| Schedule::Fields {
            minute,
            hour,
            dom,
            month,
            dow,
            location: location.clone(),
        };
        return match spec {
            "@yearly" | "@annually" => Ok(fields(
                one(minute),
                one(hour),
                one(dom),
                one(month),
                all_bits(dow),
            )),
            "@monthly" => Ok(fields(
                one(minute),
                one(hour),
                one(dom),
                all_bits(month),
                all_bits(dow),
            )),
            "@weekly" => Ok(fields(
                one(minute),
                one(hour),
                all_bits(dom),
                all_bits(month),
                one(dow),
            )),
            "@daily" | "@midnight" => Ok(fields(
                one(minute),
                one(hour),
                all_bits(dom),
                all_bits(month),
                all_bits(dow),
            )),
            "@hourly" => Ok(fields(
                one(minute),
                all_bits(hour),
                all_bits(dom),
                all_bits(month),
                all_bits(dow),
            )),
            _ => match rest.strip_prefix("every ") {
                Some(duration) => match parse_go_duration(duration) {
                    // robfig rounds down to whole seconds, with one second at least.
                    Some(seconds) => Ok(Schedule::Every {
                        seconds: (seconds.floor() as i64).max(1),
                    }),
                    None => Err(format!(
                        "failed to parse duration {spec}: time: invalid duration {duration:?}"
                    )),
                },
                None => Err(format!("unrecognized descriptor: {spec}")),
            },
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let mut sets = [0u64; 5];
    for ((field, bounds), set) in fields.iter().zip(FIELDS.iter()).zip(sets.iter_mut()) {
        for part in field.split(',') {
            *set |= parse_range(part, bounds)?;
        }
    }
    Ok(Schedule::Fields {
        minute: sets[0],
        hour: sets[1],
        dom: sets[2],
        month: sets[3],
        dow: sets[4],
        location,
    })
}

fn parse_value(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_lowercase();
    if let Some(index) = bounds.names.iter().position(|n| *n == lower) {
        return Ok(index as u32 + bounds.names_base);
    }
    parse_int(text)
}

fn parse_int(text: &str) -> Result<u32, String> {
    match text.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {text}")),
        Ok(n) => u32::try_from(n).map_err(|_| format!("failed to parse int from {text}")),
        Err(_) => Err(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing {text:?}: invalid syntax"
        )),
    }
}

fn parse_range(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        extra = STAR_BIT;
        (bounds.min, bounds.max)
    } else {
        let start = parse_value(low_and_high[0], bounds)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_value(low_and_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

/// Where Go's `time.LoadLocation` looks for zoneinfo files on Unix.
const ZONEINFO_DIRS: &[&str] = &[
    "/usr/share/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/usr/lib/zoneinfo",
];

/// An IANA time zone from the system database (`time.LoadLocation`); "UTC" and "" are UTC.
/// The one place this crate reads files: the zoneinfo database is the time zones' definition.
pub fn load_time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name == "UTC" {
        return Some(TimeZone::UTC);
    }
    if name.eq_ignore_ascii_case("local")
        || name.starts_with('/')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return None;
    }
    for dir in ZONEINFO_DIRS {
        if let Ok(data) = std::fs::read(std::path::Path::new(dir).join(name)) {
            return TimeZone::tzif(name, &data).ok();
        }
    }
    None
}

/// Upstream's CronJob `timeZone` check; the error is the message of its `field.Invalid`.
pub fn validate_time_zone(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("timeZone must be nil or non-empty string".into());
    }
    let unknown = || format!("unknown time zone {name}");
    for part in name.split('/') {
        let charset_ok = !part.is_empty()
            && part.len() <= 14
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
        if part == "." || part == ".." || part.starts_with('-') || !charset_ok {
            return Err(unknown());
        }
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    load_time_zone(name).map(|_| ()).ok_or_else(unknown)
}

fn has(set: u64, value: i8) -> bool {
    set & (1u64 << (value as u32)) != 0
}

impl Schedule {
    /// The first activation strictly after `after`, in `zone` unless the spec named its own
    /// (`cron.Schedule.Next`). `None` when nothing matches within five years.
    pub fn next(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every { seconds } => {
                let whole = Timestamp::from_second(after.as_second()).ok()?;
                whole
                    .checked_add(jiff::SignedDuration::from_secs(*seconds))
                    .ok()
            }
            Schedule::Fields {
                minute,
                hour,
                dom,
                month,
                dow,
                location,
            } => {
                let zone = match location {
                    Some(name) => load_time_zone(name)?,
                    None => zone.clone(),
                };
                next_fields([*minute, *hour, *dom, *month, *dow], after, &zone)
            }
        }
    }
}

fn day_matches(dom: u64, dow: u64, t: &Zoned) -> bool {
    let dom_match = has(dom, t.day());
    let dow_match = has(dow, t.weekday().to_sunday_zero_offset());
    if dom & STAR_BIT != 0 || dow & STAR_BIT != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

fn at(zone: &TimeZone, y: i16, m: i8, d: i8, h: i8, mi: i8) -> Option<Zoned> {
    civil::date(y, m, d)
        .at(h, mi, 0, 0)
        .to_zoned(zone.clone())
        .ok()
}

/// robfig's `SpecSchedule.Next`: walk month, day, hour, minute forward, restarting at the month
/// whenever a field wraps, with its correction for midnights moved by DST.
fn next_fields(sets: [u64; 5], after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
    let [minute, hour, dom, month, dow] = sets;
    // Start at the upcoming whole second.
    let start = Timestamp::from_second(after.as_second().checked_add(1)?).ok()?;
    let mut t = start.to_zoned(zone.clone());
    let year_limit = t.year() + 5;
    let mut added = false;
    let span = |f: fn(jiff::Span) -> jiff::Span| f(jiff::Span::new());
    'wrap: loop {
        if t.year() > year_limit {
            return None;
        }
        while !has(month, t.month()) {
            if !added {
                added = true;
                t = at(zone, t.year(), t.month(), 1, 0, 0)?;
            }
            t = t.checked_add(span(|s| s.months(1))).ok()?;
            if t.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(dom, dow, &t) {
            if !added {
                added = true;
                t = at(zone, t.year(), t.month(), t.day(), 0, 0)?;
            }
            t = t.checked_add(span(|s| s.days(1))).ok()?;
            // A DST change may have moved midnight: go back to it.
            if t.hour() != 0 {
                let fix = if t.hour() > 12 {
                    i64::from(24 - t.hour())
                } else {
                    -i64::from(t.hour())
                };
                t = t.checked_add(jiff::Span::new().hours(fix)).ok()?;
            }
            if t.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(hour, t.hour()) {
            if !added {
                added = true;
                t = at(zone, t.year(), t.month(), t.day(), t.hour(), 0)?;
            }
            t = t.checked_add(span(|s| s.hours(1))).ok()?;
            if t.hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(minute, t.minute()) {
            if !added {
                added = true;
                let ts = t.timestamp();
                let whole = ts.as_second() - ts.as_second().rem_euclid(60);
                t = Timestamp::from_second(whole).ok()?.to_zoned(zone.clone());
            }
            t = t.checked_add(span(|s| s.minutes(1))).ok()?;
            if t.minute() == 0 {
                continue 'wrap;
            }
        }
        // Seconds are always 0 in the standard format.
        while t.second() != 0 {
            added = true;
            t = t.checked_add(span(|s| s.seconds(1))).ok()?;
            if t.second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t.timestamp());
    }
}

/// Go `time.ParseDuration` for positive durations such as `1h30m` or `90s`.
fn parse_go_duration(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 1 *",
            "0 9-17 * * mon-fri",
            "15,45 * ? JAN sun",
            "@hourly",
            "@every 1h30m",
            "0 0 * * 6",
        ] {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_library_messages() {
        assert_eq!(
            parse_schedule("foo").unwrap_err(),
            "expected exactly 5 fields, found 1: [foo]"
        );
        assert_eq!(
            parse_schedule("60 * * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            parse_schedule("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse_schedule("@often").unwrap_err(),
            "unrecognized descriptor: @often"
        );
        assert_eq!(
            parse_schedule("*/0 * * * *").unwrap_err(),
            "step of range should be a positive number: */0"
        );
        assert_eq!(parse_schedule("").unwrap_err(), "empty spec string");
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(spec: &str, after: &str, zone: &str) -> String {
        parse(spec)
            .unwrap()
            .next(ts(after), &load_time_zone(zone).unwrap())
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn next_walks_fields() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z", "UTC"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2024-01-01T00:01:00Z", "UTC"),
            "2024-01-01T00:02:00Z"
        );
        assert_eq!(
            next("*/15 9-17 * * mon-fri", "2024-03-01T17:50:00Z", "UTC"),
            "2024-03-04T09:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-06-01T00:00:00Z", "UTC"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2024-06-01T00:00:00Z", "UTC"),
            "2024-06-02T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z", "UTC"),
            "2028-02-29T00:00:00Z"
        );
        // February 31st never comes.
        assert_eq!(next("0 0 31 2 *", "2024-01-01T00:00:00Z", "UTC"), "");
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00.5Z", "UTC"),
            "2024-01-01T00:01:30Z"
        );
    }

    #[test]
    fn restricted_day_fields_are_ored_and_starred_ones_anded() {
        // The 15th or any Monday.
        assert_eq!(
            next("0 0 15 * 1", "2024-01-02T00:00:00Z", "UTC"),
            "2024-01-08T00:00:00Z"
        );
        // Every Monday ("*" day of month).
        assert_eq!(
            next("0 0 * * 1", "2024-01-09T00:00:00Z", "UTC"),
            "2024-01-15T00:00:00Z"
        );
        // "*/2" is a restriction, not a star: the 1st, 3rd, ... or Sundays.
        assert_eq!(
            next("0 0 */2 * 0", "2024-01-01T12:00:00Z", "UTC"),
            "2024-01-03T00:00:00Z"
        );
    }

    #[test]
    fn next_in_time_zones() {
        assert_eq!(
            next("0 9 * * *", "2024-01-01T00:00:00Z", "Europe/Berlin"),
            "2024-01-01T08:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "2024-07-01T00:00:00Z", "Europe/Berlin"),
            "2024-07-01T07:00:00Z"
        );
        // 02:30 does not exist on the spring-forward day in New York.
        assert_eq!(
            next("30 2 * * *", "2024-03-10T00:00:00Z", "America/New_York"),
            "2024-03-11T06:30:00Z"
        );
        assert_eq!(
            next("TZ=Asia/Tokyo 0 0 * * *", "2024-01-01T00:00:00Z", "UTC"),
            "2024-01-01T15:00:00Z"
        );
    }

    #[test]
    fn time_zone_validation() {
        assert_eq!(validate_time_zone("Europe/Paris"), Ok(()));
        assert_eq!(validate_time_zone("UTC"), Ok(()));
        assert_eq!(
            validate_time_zone("Mars/Olympus").unwrap_err(),
            "unknown time zone Mars/Olympus"
        );
        assert_eq!(
            validate_time_zone("../etc/passwd").unwrap_err(),
            "unknown time zone ../etc/passwd"
        );
        assert!(validate_time_zone("").is_err());
        assert!(validate_time_zone("Local").is_err());
    }
}

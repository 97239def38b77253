//! Times, months and numbers as German readers expect them: local time in Europe/Berlin
//! ("3. Dezember 2026, 08:15 Uhr"), German month names, `1.234` for a thousand.
//!
//! Why a module: the trail and the API speak UTC and RFC 3339 (machines compare them); people
//! read the console and the public page, and a board member in Aalen should not convert from UTC
//! in their head. The zone's rules come from the time-zone database built into the binary
//! (jiff), so summer time is right on a host without `/usr/share/zoneinfo`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::catalog::labels::MONTHS_DE;

/// The zone the cities are in (looked up once).
fn berlin() -> TimeZone {
    static BERLIN: std::sync::OnceLock<TimeZone> = std::sync::OnceLock::new();
    // The bundled database always has it; UTC is the (visible, never silent) fallback.
    BERLIN
        .get_or_init(|| TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC))
        .clone()
}

/// The Berlin month of an RFC 3339 time, `2026-12` (a decision at 23:30 UTC on 30 November
/// 2026 was made in December in Aalen); `None` if it is not a time.
pub fn berlin_month(rfc3339: &str) -> Option<String> {
    let z = rfc3339.parse::<Timestamp>().ok()?.to_zoned(berlin());
    Some(format!("{:04}-{:02}", z.year(), z.month()))
}

/// An RFC 3339 time as Berlin local time, "3. Dezember 2026, 08:15 Uhr"; the input unchanged if
/// it is not a time.
pub fn date_time(rfc3339: &str) -> String {
    let Ok(t) = rfc3339.parse::<Timestamp>() else {
        return rfc3339.to_owned();
    };
    let z = t.to_zoned(berlin());
    format!(
        "{}. {} {}, {:02}:{:02} Uhr",
        z.day(),
        month_name(z.month()),
        z.year(),
        z.hour(),
        z.minute()
    )
}

/// English month names, for the console's English pages.
const MONTHS_EN: [&str; 12] = [
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

/// [`date_time`] in `lang`: in English "3 December 2026, 08:15" (still Berlin time: the
/// cities' time, whatever the reader's language).
pub fn date_time_in(rfc3339: &str, lang: policy_compiler::explain::Language) -> String {
    if lang == policy_compiler::explain::Language::De {
        return date_time(rfc3339);
    }
    let Ok(t) = rfc3339.parse::<Timestamp>() else {
        return rfc3339.to_owned();
    };
    let z = t.to_zoned(berlin());
    let month = usize::try_from(z.month() - 1)
        .ok()
        .and_then(|i| MONTHS_EN.get(i))
        .copied()
        .unwrap_or("?");
    format!("{} {month} {}, {:02}:{:02}", z.day(), z.year(), z.hour(), z.minute())
}

/// [`month`] in `lang`.
pub fn month_in(yyyy_mm: &str, lang: policy_compiler::explain::Language) -> String {
    let german = month(yyyy_mm);
    if lang == policy_compiler::explain::Language::De || german == yyyy_mm {
        return german;
    }
    let m: usize = yyyy_mm.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    format!(
        "{} {}",
        MONTHS_EN.get(m.saturating_sub(1)).copied().unwrap_or("?"),
        yyyy_mm.get(..4).unwrap_or_default()
    )
}

/// The first three letters of month `i` (0 = January) in `lang`, for chart axes.
pub fn month_short(i: usize, lang: policy_compiler::explain::Language) -> String {
    let names = if lang == policy_compiler::explain::Language::De {
        &MONTHS_DE
    } else {
        &MONTHS_EN
    };
    names.get(i).map(|m| m.chars().take(3).collect()).unwrap_or_default()
}

/// "2026-12" as "Dezember 2026"; anything else unchanged.
pub fn month(yyyy_mm: &str) -> String {
    let mut parts = yyyy_mm.splitn(2, '-');
    match (parts.next(), parts.next().and_then(|m| m.parse::<i8>().ok())) {
        (Some(year), Some(m)) if (1..=12).contains(&m) && year.len() == 4 => format!("{} {year}", month_name(m)),
        _ => yyyy_mm.to_owned(),
    }
}

fn month_name(m: i8) -> &'static str {
    usize::try_from(m - 1).ok().and_then(|i| MONTHS_DE.get(i)).copied().unwrap_or("?")
}

/// [`number`] in `lang`: English groups with commas, "1,234,567".
pub fn number_in(n: u64, lang: policy_compiler::explain::Language) -> String {
    let german = number(n);
    match lang {
        policy_compiler::explain::Language::De => german,
        policy_compiler::explain::Language::En => german.replace('.', ","),
    }
}

/// A count with German digit grouping: 1234567 → "1.234.567".
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_local_time_with_summer_time_and_german_months() {
        assert_eq!(date_time("2026-12-03T07:15:00Z"), "3. Dezember 2026, 08:15 Uhr");
        assert_eq!(date_time("2026-07-01T22:30:00Z"), "2. Juli 2026, 00:30 Uhr");
        // The night the clocks go back: 00:59 UTC is 02:59 summer time, 01:00 UTC 02:00 winter time.
        assert_eq!(date_time("2026-10-25T00:59:00Z"), "25. Oktober 2026, 02:59 Uhr");
        assert_eq!(date_time("2026-10-25T01:00:00Z"), "25. Oktober 2026, 02:00 Uhr");
        assert_eq!(date_time("gestern"), "gestern");
        assert_eq!(month("2026-03"), "März 2026");
        assert_eq!(month("2026-13"), "2026-13");
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1.000");
        assert_eq!(number(1_234_567), "1.234.567");
    }
}

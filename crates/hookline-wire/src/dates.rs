//! Date-format checks for the documents' Java-style patterns.
//!
//! Hand-written byte matchers rather than chrono's format parser: ingest checks several dates per
//! hook and thousands of hooks per request, and the patterns are fixed-width, so a direct match is
//! both faster and stricter (chrono's parser accepts variants such as one-digit fields).

/// A date format that ingest checks (the documents' Java-style patterns), named in a hook schema
/// by its `format` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// `yyyy-MM-dd HH:mm:ss`
    SpaceSeconds,
    /// `yyyy-MM-dd'T'HH:mm:ss`
    IsoSeconds,
    /// `yyyy-MM-dd'T'HH:mm:ss.SSSXXX` (XXX: `Z` or `+hh:mm` / `-hh:mm`)
    IsoMillisOffset,
    /// `yyyy-MM-dd`, or that date followed by a time (see [`is_date_or_date_time`]).
    DateOrDateTime,
}

impl DateFormat {
    pub(crate) const ALL: [DateFormat; 4] = [
        DateFormat::SpaceSeconds,
        DateFormat::IsoSeconds,
        DateFormat::IsoMillisOffset,
        DateFormat::DateOrDateTime,
    ];

    /// The value of the `format` keyword that asks for this format.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DateFormat::SpaceSeconds => "yyyy-MM-dd HH:mm:ss",
            DateFormat::IsoSeconds => "yyyy-MM-dd'T'HH:mm:ss",
            DateFormat::IsoMillisOffset => "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            DateFormat::DateOrDateTime => "yyyy-MM-dd or a date-time",
        }
    }

    /// The format a `format` keyword names, if hookline checks it.
    pub(crate) fn named(name: &str) -> Option<DateFormat> {
        DateFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The pattern as a person reads it in an error message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            DateFormat::DateOrDateTime => {
                "yyyy-MM-dd or a date-time such as yyyy-MM-dd'T'HH:mm:ss or yyyy-MM-dd HH:mm:ss"
            }
            other => other.name(),
        }
    }
}

/// Whether `s` matches `format` and names a real calendar date and time of day.
pub(crate) fn matches(format: DateFormat, s: &str) -> bool {
    let b = s.as_bytes();
    match format {
        DateFormat::SpaceSeconds => b.len() == 19 && date(b) && b[10] == b' ' && time(&b[11..]),
        DateFormat::IsoSeconds => b.len() == 19 && date(b) && b[10] == b'T' && time(&b[11..]),
        DateFormat::IsoMillisOffset => {
            b.len() >= 24
                && date(b)
                && b[10] == b'T'
                && time(&b[11..19])
                && b[19] == b'.'
                && digits(&b[20..23])
                && offset(&b[23..])
        }
        DateFormat::DateOrDateTime => is_date_or_date_time(b),
    }
}

/// `yyyy-MM-dd`, optionally followed by `T` or a space, `HH:mm:ss`, an optional fraction of 1 to 9
/// digits and an optional offset (`Z`, `+hh:mm`, `-hh:mm`). This is what "any date or date-time"
/// (Kakao `receiveDate`) means here: every layout the documents use, plus ISO 8601's common ones.
fn is_date_or_date_time(b: &[u8]) -> bool {
    if b.len() < 10 || !date(b) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 || !time(&b[11..19]) {
        return false;
    }
    let mut rest = &b[19..];
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &frac[n..];
    }
    rest.is_empty() || offset(rest)
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `yyyy-MM-dd` at the start of `b` (which must be at least 10 bytes long), a real calendar day.
fn date(b: &[u8]) -> bool {
    if b.len() < 10
        || !digits(&b[0..4])
        || b[4] != b'-'
        || !digits(&b[5..7])
        || b[7] != b'-'
        || !digits(&b[8..10])
    {
        return false;
    }
    // Through chrono so leap years and month lengths are right ("2023-02-29" is not a date).
    let year = num(&b[0..4]) as i32;
    chrono::NaiveDate::from_ymd_opt(year, num(&b[5..7]), num(&b[8..10])).is_some()
}

/// Exactly `HH:mm:ss`, 00:00:00 to 23:59:59 (no leap second: the platform never emits one).
fn time(b: &[u8]) -> bool {
    b.len() == 8
        && digits(&b[0..2])
        && b[2] == b':'
        && digits(&b[3..5])
        && b[5] == b':'
        && digits(&b[6..8])
        && num(&b[0..2]) < 24
        && num(&b[3..5]) < 60
        && num(&b[6..8]) < 60
}

/// Exactly `Z`, `+hh:mm` or `-hh:mm` (Java's `XXX`), hours below 24.
fn offset(b: &[u8]) -> bool {
    match b {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => {
            let (h, m) = ([*h1, *h2], [*m1, *m2]);
            digits(&h) && digits(&m) && num(&h) < 24 && num(&m) < 60
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DateFormat::*;

    #[test]
    fn space_seconds() {
        assert!(matches(SpaceSeconds, "2022-05-01 00:00:00"));
        assert!(matches(SpaceSeconds, "2024-02-29 23:59:59"));
        for bad in [
            "2022-05-01T00:00:00",
            "2022-05-01 00:00",
            "2022-5-01 00:00:00",
            "2022-05-01 24:00:00",
            "2022-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2022-05-01 00:00:00 ",
            "２０２２-05-01 00:00:00",
            "",
        ] {
            assert!(!matches(SpaceSeconds, bad), "{bad:?}");
        }
    }

    #[test]
    fn iso_seconds() {
        assert!(matches(IsoSeconds, "2024-04-29T20:58:02"));
        for bad in [
            "2024-04-29 20:58:02",
            "2024-04-29T20:58:02Z",
            "2024-04-29T20:58:02.000",
            "2024-04-29T20:60:02",
            "2024-04-29",
        ] {
            assert!(!matches(IsoSeconds, bad), "{bad:?}");
        }
    }

    #[test]
    fn iso_millis_offset() {
        for good in [
            "2020-09-09T11:25:10.000+09:00",
            "2024-05-28T09:00:00.000+09:00",
            "2024-05-28T09:00:00.123Z",
            "2024-05-28T09:00:00.999-05:30",
        ] {
            assert!(matches(IsoMillisOffset, good), "{good:?}");
        }
        for bad in [
            "2020-09-09 11:25",
            "2020-09-09T11:25:10+09:00",
            "2020-09-09T11:25:10.00+09:00",
            "2020-09-09T11:25:10.0000+09:00",
            "2020-09-09T11:25:10.000+0900",
            "2020-09-09T11:25:10.000+09",
            "2020-09-09T11:25:10.000",
            "2020-09-09T11:25:10.000z",
            "2020-09-09T11:25:10.000+24:00",
            "2020-09-09 11:25:10.000+09:00",
        ] {
            assert!(!matches(IsoMillisOffset, bad), "{bad:?}");
        }
    }

    #[test]
    fn date_or_date_time() {
        for good in [
            "2023-06-01",
            "2023-06-01 12:00:00",
            "2023-06-01T12:00:00",
            "2023-06-01T12:00:00.5",
            "2023-06-01T12:00:00.123456789Z",
            "2023-06-01T12:00:00+09:00",
            "2023-06-01 12:00:00.000+09:00",
        ] {
            assert!(matches(DateOrDateTime, good), "{good:?}");
        }
        for bad in [
            "2023-06",
            "2023-06-31",
            "2023-06-01T",
            "2023-06-01T12:00",
            "2023-06-01X12:00:00",
            "2023-06-01T12:00:00.",
            "2023-06-01T12:00:00.1234567890",
            "2023-06-01T12:00:00+9",
            "String",
        ] {
            assert!(!matches(DateOrDateTime, bad), "{bad:?}");
        }
    }
}

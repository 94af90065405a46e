//! Durations as people write them: a whole number and a unit (`500ms`, `5s`, `2m`, `1h`, `3d`).
//!
//! The one parser and formatter for every duration hookline reads or shows: `serve` flags
//! (`--retention 30d`), config fields (`retrySchedule`), request fields (`gracePeriod`). Each
//! caller states its own range with [`Period::within`], so the error names the range the caller
//! allows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written as a whole number and one unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration such as 500ms, 5s, 2m, 1h or 3d")]
    Syntax(String),
    #[error("{text:?} is outside {min} to {max}")]
    OutOfRange {
        text: String,
        min: Period,
        max: Period,
    },
}

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

impl Period {
    pub const fn new(d: Duration) -> Self {
        Period(d)
    }

    pub const fn get(self) -> Duration {
        self.0
    }

    /// Parses `text` and checks it lies in `min..=max`.
    pub fn parse_within(text: &str, min: Duration, max: Duration) -> Result<Self, DurationError> {
        let period: Period = text.parse()?;
        if !(min..=max).contains(&period.0) {
            return Err(DurationError::OutOfRange {
                text: text.to_owned(),
                min: Period(min),
                max: Period(max),
            });
        }
        Ok(period)
    }
}

impl FromStr for Period {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || DurationError::Syntax(text.to_owned());
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&at| at > 0)
            .ok_or_else(syntax)?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number.parse().map_err(|_| syntax())?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, ms)| *ms)
            .ok_or_else(syntax)?;
        let ms = n.checked_mul(scale).ok_or_else(syntax)?;
        Ok(Period(Duration::from_millis(ms)))
    }
}

/// The shortest text that reads back as the same duration (sub-millisecond parts are dropped).
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis() as u64;
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, scale)| ms.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("ms", 1));
        if ms == 0 {
            return f.write_str("0s");
        }
        write!(f, "{}{unit}", ms / scale)
    }
}

impl From<Period> for Duration {
    fn from(p: Period) -> Duration {
        p.0
    }
}

/// For `clap`'s `value_parser`: a flag's duration, any length.
pub fn parse_flag(text: &str) -> Result<Duration, DurationError> {
    text.parse::<Period>().map(Period::get)
}

/// Shorthand for `Period::new(d).to_string()`.
pub fn format(d: Duration) -> String {
    Period(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let ms = |text: &str| text.parse::<Period>().map(|p| p.get().as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("3d"), Ok(259_200_000));
        assert_eq!(ms("0s"), Ok(0));
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-5s",
            "5 s",
            "1.5s",
            "99999999999999999999s",
        ] {
            assert!(
                matches!(bad.parse::<Period>(), Err(DurationError::Syntax(_))),
                "{bad:?} must not parse"
            );
        }
        assert!(matches!(
            "18446744073709551615d".parse::<Period>(),
            Err(DurationError::Syntax(_))
        ));
    }

    #[test]
    fn formats_the_shortest_text_that_reads_back() {
        for (text, shown) in [
            ("1500ms", "1500ms"),
            ("90s", "90s"),
            ("120s", "2m"),
            ("60m", "1h"),
            ("24h", "1d"),
            ("0ms", "0s"),
        ] {
            let p: Period = text.parse().unwrap();
            assert_eq!(p.to_string(), shown);
            assert_eq!(shown.parse::<Period>(), Ok(p));
        }
    }

    #[test]
    fn ranges_are_the_callers_and_named_in_the_error() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(86_400);
        assert!(Period::parse_within("100ms", min, max).is_ok());
        assert!(Period::parse_within("1d", min, max).is_ok());
        let err = Period::parse_within("25h", min, max).unwrap_err();
        assert_eq!(err.to_string(), "\"25h\" is outside 100ms to 1d");
        assert!(matches!(
            Period::parse_within("99ms", min, max),
            Err(DurationError::OutOfRange { .. })
        ));
    }
}

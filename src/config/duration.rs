//! Durations as the config and the command line write them, and as stepgate prints them.
//!
//! One form only: whole numbers with a unit, `s`, `m`, `h` or `d`, several
//! of them combined largest unit first with no spaces (`90s`, `5m`, `1h30m`,
//! `7d`). Anything else is refused rather than guessed at: `5M` (months to
//! some parsers), `1y`, `5 minutes`, `8hrs`, `1.5h`, a bare number, a sign,
//! an empty value. No duration may exceed [`MAX`] (366 days); keys have
//! their own minimums where the config reference says so.
//!
//! [`format`] prints a duration back in the same form, so what `explain`
//! and the portal pages show can be pasted into the config.

use std::fmt;
use std::time::Duration;

/// The longest duration any key or flag accepts: a year and a day.
pub const MAX: Duration = Duration::from_secs(366 * DAY);

/// What every duration error says about the accepted forms.
pub const FORMS: &str = "write whole numbers with s, m, h or d, largest unit first, \
     like 90s, 5m, 1h30m or 7d (at most 366d)";

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The units, largest first: a duration names each at most once, in this order.
const UNITS: [(u8, u64); 4] = [(b'd', DAY), (b'h', HOUR), (b'm', MINUTE), (b's', 1)];

/// Why a text is not a duration; its message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("\"{0}\" is not a duration: {FORMS}")]
    Malformed(String),
    #[error("{0} is a bare number: give it a unit; {FORMS}")]
    BareNumber(String),
    #[error("\"{0}\" is longer than the 366d any duration may be")]
    TooLong(String),
}

/// Parse a duration in the one accepted form (see the module doc).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(malformed());
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Err(DurationError::BareNumber(text.to_string()));
    }
    let mut total: u64 = 0;
    let mut next_unit = 0; // index into UNITS of the largest unit still allowed
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i == bytes.len() {
            return Err(malformed());
        }
        let Some(offset) = UNITS[next_unit..].iter().position(|(u, _)| *u == bytes[i]) else {
            return Err(malformed());
        };
        let (_, scale) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        // Digits only, so the text parses unless it overflows: then it is too long.
        let n: u64 = text[start..i]
            .parse()
            .map_err(|_| DurationError::TooLong(text.to_string()))?;
        total = n
            .checked_mul(scale)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        i += 1;
        if next_unit == UNITS.len() && i < bytes.len() {
            return Err(malformed());
        }
    }
    let d = Duration::from_secs(total);
    if d > MAX {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(d)
}

/// A duration in the accepted form, whole seconds (`1h30m`, `0s`).
pub fn format(d: Duration) -> String {
    Formatted(d).to_string()
}

/// [`format`] for `write!` and `format!` without an intermediate string.
#[derive(Debug, Clone, Copy)]
pub struct Formatted(pub Duration);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_secs();
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in UNITS {
            let n = rest / scale;
            if n > 0 {
                write!(f, "{n}{}", unit as char)?;
                rest -= n * scale;
            }
        }
        Ok(())
    }
}

/// `#[serde(default, deserialize_with = "…::optional")]` for an `Option<Duration>` key.
pub fn optional<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(Visit).map(Some)
}

struct Visit;

impl<'de> serde::de::Visitor<'de> for Visit {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration ({FORMS})")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(DurationError::BareNumber(v.to_string())))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(DurationError::Malformed(v.to_string())))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(DurationError::Malformed(v.to_string())))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Duration, E> {
        Err(E::custom(DurationError::Malformed(v.to_string())))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Duration, E> {
        Err(E::custom(DurationError::Malformed(String::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1;
    const M: u64 = 60;
    const H: u64 = 3600;
    const D: u64 = 86_400;

    #[test]
    fn accepted_forms() {
        let table: &[(&str, u64)] = &[
            ("0s", 0),
            ("1s", S),
            ("90s", 90),
            ("5m", 5 * M),
            ("8h", 8 * H),
            ("7d", 7 * D),
            ("1h30m", H + 30 * M),
            ("1d2h3m4s", D + 2 * H + 3 * M + 4),
            ("2d30s", 2 * D + 30),
            ("90m", 90 * M),
            ("05m", 5 * M),
            ("366d", 366 * D),
            ("31622400s", 366 * D),
        ];
        for (text, secs) in table {
            assert_eq!(parse(text), Ok(Duration::from_secs(*secs)), "{text}");
        }
    }

    #[test]
    fn refused_forms() {
        let malformed = [
            "",
            " ",
            "5M",
            "1y",
            "1w",
            "5 minutes",
            "5 m",
            " 5m",
            "5m ",
            "8hrs",
            "8hr",
            "1.5h",
            "-5m",
            "+5m",
            "5ms",
            "5us",
            "1m1h",
            "1h1h",
            "30m1h",
            "1h-30m",
            "h",
            "m5",
            "5m5",
            "1d 2h",
            "5min",
            "1sec",
            "5S",
            "1H",
            "1D",
            "٥m",
            "5m\n",
            "0x10s",
            "1_000s",
        ];
        for text in malformed {
            assert_eq!(
                parse(text),
                Err(DurationError::Malformed(text.to_string())),
                "{text:?}"
            );
        }
        for text in ["0", "300", "5"] {
            assert_eq!(
                parse(text),
                Err(DurationError::BareNumber(text.to_string()))
            );
        }
        for text in [
            "367d",
            "300000000s",
            "8785h",
            "366d1s",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            assert_eq!(
                parse(text),
                Err(DurationError::TooLong(text.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_name_the_accepted_forms() {
        for text in ["5M", "5"] {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains("90s, 5m, 1h30m or 7d"), "{message}");
            assert!(message.contains(text), "{message}");
        }
    }

    #[test]
    fn formats_in_the_accepted_form() {
        let table: &[(u64, &str)] = &[
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (300, "5m"),
            (5400, "1h30m"),
            (8 * H, "8h"),
            (7 * D, "7d"),
            (150 * D, "150d"),
            (D + 2 * H + 3 * M + 4, "1d2h3m4s"),
        ];
        for (secs, text) in table {
            let d = Duration::from_secs(*secs);
            assert_eq!(format(d), *text);
            assert_eq!(parse(text), Ok(d), "printed forms parse back");
        }
    }
}

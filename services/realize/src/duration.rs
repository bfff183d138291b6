//! Merge's duration strings: Go's `time.ParseDuration` plus days and weeks ("2w3d4h5m6s").

use trellis_types::Error;

/// Nanoseconds per unit, longest names first so `ms` is not read as `m` followed by `s`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
];

fn invalid(input: &str, why: &str) -> Error {
    Error::invalid(
        "duration",
        format!("{input:?} is not a duration ({why}); write it like \"7d\", \"1h30m\" or \"2w3d4h5m6s\""),
    )
}

/// Parses a duration like `2w3d4h5m6s`, `1h30m`, `1.5h` or `90s` into whole seconds (rounded
/// down). Units: `w`, `d`, `h`, `m`, `s`, `ms`, `us`, `ns`; a plain `0` is zero. Negative and
/// empty durations are refused.
pub fn parse_duration(input: &str) -> Result<i64, Error> {
    let text = input.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.is_empty() {
        return Err(invalid(input, "it is empty"));
    }
    if text.starts_with('-') {
        return Err(invalid(input, "it is negative"));
    }
    if text == "0" {
        return Ok(0);
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid(input, "expected a number"));
        }
        rest = &rest[number_len..];
        let Some(&(unit, scale)) = UNITS.iter().find(|(unit, _)| {
            rest.starts_with(unit) && !rest[unit.len()..].starts_with(|c: char| c.is_alphabetic())
        }) else {
            return Err(invalid(input, &format!("{number} needs a unit: w, d, h, m, s or ms")));
        };
        rest = &rest[unit.len()..];
        nanos = nanos
            .checked_add(scaled(number, scale).ok_or_else(|| invalid(input, "it is too long"))?)
            .ok_or_else(|| invalid(input, "it is too long"))?;
    }
    i64::try_from(nanos / 1_000_000_000).map_err(|_| invalid(input, "it is too long"))
}

/// `number` (digits with at most one `.`) times `scale` nanoseconds, truncated.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut total = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        total = total.checked_add(u128::from(digit - b'0') * place)?;
    }
    // Beyond what an i64 of seconds holds: refuse rather than wrap.
    (total <= i64::MAX as u128 * 1_000_000_000).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_style_durations() {
        let cases = [
            ("7d", 7 * 86_400),
            ("1h30m", 5_400),
            ("2w3d4h5m6s", 2 * 604_800 + 3 * 86_400 + 4 * 3_600 + 5 * 60 + 6),
            ("90s", 90),
            ("1.5h", 5_400),
            (".5m", 30),
            ("1500ms", 1),
            ("0", 0),
            ("+1m", 60),
            (" 1d ", 86_400),
            ("1m30s500ms", 90),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse_duration(text).unwrap(), seconds, "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("-1h", "negative"),
            ("10", "needs a unit"),
            ("1x", "needs a unit"),
            ("h", "expected a number"),
            ("1.2.3s", "expected a number"),
            ("1hour", "needs a unit"),
            ("99999999999999999999w", "too long"),
        ] {
            let Error::InvalidArgument { violations } = parse_duration(text).unwrap_err() else {
                panic!("{text}: expected invalid argument")
            };
            assert_eq!(violations[0].field, "duration");
            assert!(violations[0].description.contains(why), "{text}: {}", violations[0].description);
        }
    }
}

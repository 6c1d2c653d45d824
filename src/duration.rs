//! Durations on the command line: `10s`, `500ms`, `250us`, `2m`, `1h`, or a bare
//! number of seconds (`1.5`). `off` (where allowed) means "no limit".

use std::time::Duration;

/// Parses `10s`, `250ms`, `500us` (or `µs`), `2m`, `1h`, `1.5` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (n, 0.000_001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e9 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "{text:?} is not a duration like 10s, 500ms, 250us, 2m or 1.5"
        )),
    }
}

/// Like [`parse_duration`], but `off`, `none` or `0` mean no limit.
pub fn parse_optional_duration(text: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" | "none" | "0" => Ok(None),
        _ => parse_duration(text).map(|d| if d.is_zero() { None } else { Some(d) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1.5µs").unwrap(), Duration::from_nanos(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["", "x", "-1s", "10 parsecs", "NaN", "1e20"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_optional_duration("off").unwrap(), None);
        assert_eq!(parse_optional_duration("0s").unwrap(), None);
        assert_eq!(
            parse_optional_duration("5s").unwrap(),
            Some(Duration::from_secs(5))
        );
    }
}

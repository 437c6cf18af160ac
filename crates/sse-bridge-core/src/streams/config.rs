//! A stream's configuration from its `PUT`: content type, `Stream-TTL` /
//! `Stream-Expires-At`, and the strict syntax the protocol asks of them;
//! plus `Stream-Cursor` values (§10.1). Pure: clocks are passed in.

/// The `application/octet-stream` default of a `PUT` without a content type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The media type of a content type: before any `;`, trimmed, lower case.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a content type puts a stream in JSON mode.
pub fn is_json(content_type: &str) -> bool {
    essence(content_type) == "application/json"
}

/// Whether SSE carries this content type as text (else base64).
pub fn is_text(content_type: &str) -> bool {
    let media = essence(content_type);
    media.starts_with("text/") || media == "application/json"
}

/// Why a header of a `PUT` is refused (`400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Stream-TTL must be a non-negative integer without sign, zeros or exponent")]
    Ttl,
    #[error("Stream-Expires-At must be an RFC 3339 timestamp")]
    ExpiresAt,
    #[error("Stream-TTL and Stream-Expires-At exclude each other")]
    Both,
}

/// An absolute expiry: the header as given (echoed by `HEAD`) and its instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiresAt {
    pub text: String,
    pub unix_ms: i64,
}

/// What bounds a stream's life.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Expiry {
    #[default]
    Never,
    /// Idle for this many seconds (every read and write restarts it).
    Ttl(u64),
    At(ExpiresAt),
}

impl Expiry {
    /// From the two headers.
    pub fn parse(ttl: Option<&str>, expires_at: Option<&str>) -> Result<Expiry, ConfigError> {
        match (ttl, expires_at) {
            (Some(_), Some(_)) => Err(ConfigError::Both),
            (Some(ttl), None) => parse_ttl(ttl).map(Expiry::Ttl),
            (None, Some(at)) => Ok(Expiry::At(ExpiresAt {
                text: at.to_owned(),
                unix_ms: parse_rfc3339(at).ok_or(ConfigError::ExpiresAt)?,
            })),
            (None, None) => Ok(Expiry::Never),
        }
    }

    /// Whether a stream last touched at `touched_ms` has expired at `now_ms`.
    pub fn expired(&self, touched_ms: i64, now_ms: i64) -> bool {
        match self {
            Expiry::Never => false,
            Expiry::Ttl(secs) => now_ms >= touched_ms.saturating_add(*secs as i64 * 1000),
            Expiry::At(at) => now_ms >= at.unix_ms,
        }
    }
}

fn parse_ttl(text: &str) -> Result<u64, ConfigError> {
    let canonical = text == "0" || (!text.starts_with('0') && !text.is_empty());
    if !canonical || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 15 {
        return Err(ConfigError::Ttl);
    }
    text.parse().map_err(|_| ConfigError::Ttl)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &text[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_minutes = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = num(i + 1..i + 3)?;
            let minutes = num(i + 4..i + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Cursors count 20-second intervals since 2024-10-09T00:00:00Z (§10.1).
const CURSOR_EPOCH_MS: i64 = 1_728_432_000_000;
const CURSOR_INTERVAL_MS: i64 = 20_000;

/// The `Stream-Cursor` of a live response: the current interval, or past
/// the client's `cursor` by 1–3600 s of jitter (`jitter` in 0..1, drawn by
/// the caller) when the client is already there, so cursors never go back.
pub fn cursor(client: Option<&str>, now_ms: i64, jitter: f64) -> String {
    let current = (now_ms - CURSOR_EPOCH_MS).div_euclid(CURSOR_INTERVAL_MS);
    match client.and_then(|c| c.parse::<i64>().ok()) {
        Some(theirs) if theirs >= current => {
            let seconds = 1 + (jitter.clamp(0.0, 1.0) * 3599.0) as i64;
            let intervals = ((seconds * 1000 + CURSOR_INTERVAL_MS - 1) / CURSOR_INTERVAL_MS).max(1);
            (theirs.saturating_add(intervals)).to_string()
        }
        _ => current.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_strict_and_excludes_expires_at() {
        assert_eq!(Expiry::parse(Some("3600"), None), Ok(Expiry::Ttl(3600)));
        assert_eq!(Expiry::parse(Some("0"), None), Ok(Expiry::Ttl(0)));
        for bad in ["00060", "+60", "60.5", "1e3", "", "-1", " 60"] {
            assert_eq!(
                Expiry::parse(Some(bad), None),
                Err(ConfigError::Ttl),
                "{bad}"
            );
        }
        assert_eq!(
            Expiry::parse(Some("1"), Some("2030-01-01T00:00:00Z")),
            Err(ConfigError::Both)
        );
    }

    #[test]
    fn rfc3339_with_zones_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339("2025-03-01T12:34:56.789Z"),
            Some(1_740_832_496_789)
        );
        for bad in [
            "not-a-timestamp",
            "2025-13-01T00:00:00Z",
            "2025-01-01T00:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_follow_time_and_never_go_back() {
        let now = CURSOR_EPOCH_MS + 45_000;
        assert_eq!(cursor(None, now, 0.5), "2");
        assert_eq!(cursor(Some("1"), now, 0.5), "2");
        assert_eq!(cursor(Some("garbage"), now, 0.5), "2");
        let ahead: i64 = cursor(Some("2"), now, 0.0).parse().unwrap();
        assert!(ahead > 2);
        let far: i64 = cursor(Some("2"), now, 1.0).parse().unwrap();
        assert_eq!(far, 2 + 180);
    }
}

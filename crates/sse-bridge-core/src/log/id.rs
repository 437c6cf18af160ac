//! [`LogId`]: the position of an event in a session's log.
//!
//! Redis Stream entry ids (`<ms>-<seq>`), which the embedded log imitates.
//! The id travels to `EventSource` clients as the SSE frame's `id:` and
//! comes back as `Last-Event-ID`, so it is parsed strictly: digits only,
//! `<ms>` alone meaning `<ms>-0` as Redis reads it.

use std::fmt;
use std::str::FromStr;

/// An entry id in a session's log; ordered like Redis orders stream ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub ms: u64,
    pub seq: u64,
}

impl LogId {
    pub const ZERO: LogId = LogId { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        LogId { ms, seq }
    }

    /// The greatest id before this one (`None` for [`LogId::ZERO`]): a
    /// read after it starts at this entry.
    pub fn previous(self) -> Option<LogId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(LogId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(LogId::new(ms, seq - 1)),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a string is not a [`LogId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream entry id (expected <ms>-<seq>, digits only): {0:?}")]
pub struct InvalidLogId(pub String);

impl FromStr for LogId {
    type Err = InvalidLogId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidLogId(s.chars().take(64).collect());
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u64>().map_err(|_| invalid())
        };
        match s.split_once('-') {
            Some((ms, seq)) => Ok(LogId::new(number(ms)?, number(seq)?)),
            None => Ok(LogId::new(number(s)?, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_stream_ids_strictly() {
        assert_eq!("1-2".parse(), Ok(LogId::new(1, 2)));
        assert_eq!(
            "1700000000000-0".parse(),
            Ok(LogId::new(1_700_000_000_000, 0))
        );
        assert_eq!("5".parse(), Ok(LogId::new(5, 0)));
        assert_eq!("0".parse(), Ok(LogId::ZERO));
        for bad in [
            "",
            "-1",
            "1-",
            "-",
            "a-1",
            "1-2-3",
            " 1-2",
            "+1",
            "1-x",
            "99999999999999999999-0",
        ] {
            assert!(bad.parse::<LogId>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(LogId::new(3, 4).to_string(), "3-4");
        assert!(LogId::new(1, 9) < LogId::new(2, 0));
    }
}

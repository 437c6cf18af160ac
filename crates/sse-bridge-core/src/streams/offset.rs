//! Offsets: opaque to clients, a position to the store.
//!
//! A stream's positions count what it holds — bytes for byte streams, JSON
//! values for `application/json` ones — so an offset never repeats, grows
//! with every append (empty appends are refused) and a fork shares its
//! source's positions up to the fork point. On the wire a position is
//! `0000000000000000_<position as 16 decimal digits>`: fixed width, so
//! offsets sort as strings, and the shape of the reference server's, so
//! clients that log or compare them see nothing unusual. The first part is
//! reserved (always zero) and free of meaning for now.

use std::fmt;

/// The largest position: offsets stay 16 digits wide (and exact in Lua).
pub const MAX_POSITION: u64 = (1 << 53) - 1;

/// A position in a stream, shown as an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0000000000000000_{:016}", self.0)
    }
}

/// Where a read starts, from the `offset` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no offset: the first retained position.
    Start,
    /// `now`: the tail, whatever it is when the read runs.
    Tail,
    /// An offset the server returned.
    At(Offset),
}

/// An `offset` that is neither `-1`, `now` nor an offset of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid offset {0:?}")]
pub struct BadOffset(pub String);

impl Offset {
    /// Parses an offset this server wrote (exactly; nothing else is one).
    pub fn parse(text: &str) -> Result<Offset, BadOffset> {
        let bad = || BadOffset(text.chars().take(64).collect());
        let (reserved, position) = text.split_once('_').ok_or_else(bad)?;
        let digits = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(reserved) || !digits(position) || reserved.bytes().any(|b| b != b'0') {
            return Err(bad());
        }
        let position: u64 = position.parse().map_err(|_| bad())?;
        if position > MAX_POSITION {
            return Err(bad());
        }
        Ok(Offset(position))
    }
}

impl ReadFrom {
    /// The `offset` query parameter (`None`: absent).
    pub fn parse(text: Option<&str>) -> Result<ReadFrom, BadOffset> {
        match text {
            None | Some("-1") => Ok(ReadFrom::Start),
            Some("now") => Ok(ReadFrom::Tail),
            Some(other) => Offset::parse(other).map(ReadFrom::At),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_sort_as_strings() {
        let mut shown: Vec<String> = [0, 9, 10, 123_456, MAX_POSITION]
            .iter()
            .map(|p| Offset(*p).to_string())
            .collect();
        let sorted = shown.clone();
        shown.sort();
        assert_eq!(shown, sorted);
        for text in &shown {
            assert_eq!(Offset::parse(text).unwrap().to_string(), *text);
        }
    }

    #[test]
    fn only_our_offsets_and_the_sentinels_parse() {
        assert_eq!(ReadFrom::parse(None), Ok(ReadFrom::Start));
        assert_eq!(ReadFrom::parse(Some("-1")), Ok(ReadFrom::Start));
        assert_eq!(ReadFrom::parse(Some("now")), Ok(ReadFrom::Tail));
        for bad in [
            "",
            "abc",
            "0_0",
            "-2",
            "0000000000000001_0000000000000000",
            "0000000000000000_000000000000000x",
            "0000000000000000_9999999999999999",
        ] {
            assert!(ReadFrom::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}

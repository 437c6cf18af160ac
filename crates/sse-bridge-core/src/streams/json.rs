//! JSON mode (PROTOCOL.md §9.1): a body is validated and one level of array
//! is flattened into messages, each kept as the writer sent it (whitespace
//! around it trimmed), so reads return the same bytes inside `[`…`]`.

use bytes::Bytes;
use serde_json::value::RawValue;

/// Why a JSON body was refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonBodyError {
    #[error("the body is not valid JSON")]
    Invalid,
    #[error("an empty JSON array appends nothing")]
    EmptyArray,
}

/// The messages of a body: an array's elements, or the body itself.
/// `allow_empty`: an empty array is no messages (create) rather than an
/// error (append).
pub fn messages(body: &Bytes, allow_empty: bool) -> Result<Vec<Bytes>, JsonBodyError> {
    let text = std::str::from_utf8(body).map_err(|_| JsonBodyError::Invalid)?;
    let raw: &RawValue = serde_json::from_str(text).map_err(|_| JsonBodyError::Invalid)?;
    let trimmed = raw.get();
    if !trimmed.starts_with('[') {
        return Ok(vec![slice_of(body, text, trimmed)]);
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(trimmed).map_err(|_| JsonBodyError::Invalid)?;
    if items.is_empty() && !allow_empty {
        return Err(JsonBodyError::EmptyArray);
    }
    Ok(items
        .iter()
        .map(|item| slice_of(body, text, item.get()))
        .collect())
}

/// `part` (a slice of `text`, which is `body`'s bytes) as a slice of `body`.
fn slice_of(body: &Bytes, text: &str, part: &str) -> Bytes {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    body.slice(start..start + part.len())
}

/// `[m1,m2,…]`.
pub fn array<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, message) in messages.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(message);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(body: &str) -> Result<Vec<String>, JsonBodyError> {
        messages(&Bytes::from(body.to_owned()), false).map(|m| {
            m.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn one_level_of_array_is_flattened_and_bytes_are_kept() {
        assert_eq!(flat(r#" {"a": 1} "#).unwrap(), [r#"{"a": 1}"#]);
        assert_eq!(
            flat(r#"[{"a":1}, {"b":2}]"#).unwrap(),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(flat("[[1,2], [3,4]]").unwrap(), ["[1,2]", "[3,4]"]);
        assert_eq!(flat("[[[1,2,3]]]").unwrap(), ["[[1,2,3]]"]);
        assert_eq!(flat("\"x\"").unwrap(), ["\"x\""]);
    }

    #[test]
    fn invalid_json_and_empty_appends_are_refused() {
        assert_eq!(flat("{nope"), Err(JsonBodyError::Invalid));
        assert_eq!(flat("[1,"), Err(JsonBodyError::Invalid));
        assert_eq!(flat("[]"), Err(JsonBodyError::EmptyArray));
        assert_eq!(messages(&Bytes::from_static(b"[]"), true), Ok(vec![]));
        assert_eq!(array([b"1".as_slice(), b"{}"]), b"[1,{}]");
        assert_eq!(array(std::iter::empty()), b"[]");
    }
}

//! Checks every route shares on what it will pass on to a platform: credentials that must fit in
//! an HTTP header, and ids that go into an upstream URL path (the bounds of `limit` and `offset`
//! are `crate::paging`). Each refusal is `400 VALIDATION_ERROR` naming the parameter or field, before any
//! upstream call.

use secrecy::SecretString;

use super::error::{ApiError, ApiResult};

/// Longest id accepted in a path and passed on to a platform.
pub const MAX_PATH_ID_BYTES: usize = 128;

/// Whether every byte of `value` may stand in an HTTP header as a token: visible ASCII, no
/// space, no control character (platform keys, tokens and client ids are all of this kind).
pub fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

/// A credential as given, trimmed: empty, or holding a byte that cannot be sent in a header
/// (control characters, spaces, DEL, non-ASCII), is a `VALIDATION_ERROR` naming `field`. The
/// value itself is never echoed.
pub fn credential(field: &str, value: &str) -> ApiResult<SecretString> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must not be empty."),
        ));
    }
    if !header_safe(v) {
        return Err(ApiError::validation(
            field,
            format!(
                "`{field}` holds a character that cannot be sent in an HTTP header (a control character, a space inside it, or a non-ASCII character): paste it again as the platform shows it."
            ),
        ));
    }
    Ok(SecretString::from(v.to_owned()))
}

/// An id that will be placed in an upstream URL path: 1–[`MAX_PATH_ID_BYTES`] bytes, not `.` or
/// `..`, without `/`, `\` or control characters. (The connectors percent-encode every id as one
/// path segment as well; this refuses what no encoding makes meaningful.)
pub fn path_id<'a>(field: &str, value: &'a str) -> ApiResult<&'a str> {
    let bad = value.is_empty()
        || value.len() > MAX_PATH_ID_BYTES
        || value == "."
        || value == ".."
        || value.contains(['/', '\\'])
        || value.chars().any(char::is_control);
    if bad {
        return Err(ApiError::validation(
            field,
            format!(
                "`{field}` must be 1–{MAX_PATH_ID_BYTES} characters, not `.` or `..`, without `/`, `\\` or control characters."
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: &ApiError) -> &str {
        e.details["field"].as_str().unwrap_or_default()
    }

    #[test]
    fn credentials_must_fit_in_a_header() {
        use secrecy::ExposeSecret as _;
        assert_eq!(
            credential("apiKey", "  KeapAK-abc_123.x \n")
                .unwrap()
                .expose_secret(),
            "KeapAK-abc_123.x"
        );
        for bad in [
            "",
            "  ",
            "ab\u{1}cd",
            "ab\rcd",
            "ab\ncd",
            "a b",
            "ab\u{7f}",
            "clé",
            "a\tb",
        ] {
            let e = credential("apiKey", bad).unwrap_err();
            assert_eq!(field(&e), "apiKey", "{bad:?}");
            assert!(!e.message.contains(bad) || bad.trim().is_empty());
        }
    }

    #[test]
    fn path_ids_refuse_dot_segments_and_slashes() {
        for ok in ["123", "abc-DEF_1.2", "...", "a.b", "名前"] {
            assert_eq!(path_id("campaignId", ok).unwrap(), ok);
        }
        let long = "x".repeat(MAX_PATH_ID_BYTES + 1);
        for bad in ["", ".", "..", "a/b", "/", "..\\x", "a\nb", long.as_str()] {
            let e = path_id("campaignId", bad).unwrap_err();
            assert_eq!(field(&e), "campaignId", "{bad:?}");
        }
    }
}

//! Checks every route shares on what it will pass on to a platform: the bounds of `limit` and
//! `offset`, credentials that must fit in an HTTP header, and ids that go into an upstream URL
//! path. Each refusal is `400 VALIDATION_ERROR` naming the parameter or field, before any
//! upstream call.

use secrecy::SecretString;

use super::error::{ApiError, ApiResult};

/// The largest `limit` any list route takes (a route may document a smaller one, such as the
/// sync jobs' 100). Mirrored as `maximum` in the OpenAPI parameters.
pub const MAX_LIMIT: u32 = 1000;

/// The largest `offset` any list route takes: deeper than any account's campaigns, contacts or
/// tags, small enough that no platform is asked for a page number near an integer's end.
pub const MAX_OFFSET: u64 = 10_000_000;

/// Longest id accepted in a path and passed on to a platform.
pub const MAX_PATH_ID_BYTES: usize = 128;

/// `limit`: `default` when absent, else 1–`max` (at most [`MAX_LIMIT`]).
pub fn limit<N: Into<i128>>(value: Option<N>, default: u32, max: u32) -> ApiResult<u32> {
    let max = max.min(MAX_LIMIT);
    let Some(value) = value else {
        return Ok(default);
    };
    let value: i128 = value.into();
    u32::try_from(value)
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| {
            ApiError::validation("limit", format!("`limit` must be between 1 and {max}."))
                .detail("minimum", 1)
                .detail("maximum", max)
        })
}

/// `offset`: 0 when absent, else 0–[`MAX_OFFSET`].
pub fn offset<N: Into<i128>>(value: Option<N>) -> ApiResult<u64> {
    let Some(value) = value else {
        return Ok(0);
    };
    let value: i128 = value.into();
    u64::try_from(value)
        .ok()
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or_else(|| {
            ApiError::validation(
                "offset",
                format!("`offset` must be between 0 and {MAX_OFFSET}."),
            )
            .detail("minimum", 0)
            .detail("maximum", MAX_OFFSET)
        })
}

/// `limit` and `offset` together (see [`limit`] and [`offset`]).
pub fn paging<L: Into<i128>, O: Into<i128>>(
    limit_value: Option<L>,
    offset_value: Option<O>,
    default_limit: u32,
    max_limit: u32,
) -> ApiResult<(u32, u64)> {
    Ok((
        limit(limit_value, default_limit, max_limit)?,
        offset(offset_value)?,
    ))
}

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
    fn limit_and_offset_bounds() {
        assert_eq!(limit::<u32>(None, 100, 1000).unwrap(), 100);
        assert_eq!(limit(Some(1u32), 100, 1000).unwrap(), 1);
        assert_eq!(limit(Some(1000i64), 100, 1000).unwrap(), 1000);
        assert_eq!(limit(Some(100u32), 20, 100).unwrap(), 100);
        for bad in [0i64, -1, 1001, i64::MAX, i64::MIN] {
            let e = limit(Some(bad), 100, 1000).unwrap_err();
            assert_eq!(field(&e), "limit", "{bad}");
        }
        assert!(limit(Some(101u32), 20, 100).is_err());
        // A route cannot document more than the one maximum.
        assert!(limit(Some(5000u32), 100, 10_000).is_err());
        assert_eq!(offset::<u64>(None).unwrap(), 0);
        assert_eq!(offset(Some(MAX_OFFSET)).unwrap(), MAX_OFFSET);
        for bad in [
            i128::from(MAX_OFFSET) + 1,
            i128::from(i64::MAX),
            i128::from(u64::MAX),
            -1,
        ] {
            let e = offset(Some(bad)).unwrap_err();
            assert_eq!(field(&e), "offset", "{bad}");
        }
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

//! The bounds of `limit` and `offset` every list takes, whether a route or a use case checks
//! them. Each refusal is a `VALIDATION_ERROR` naming the parameter, with its bounds as details.

use crate::error::{Error, Result};

/// The largest `limit` any list takes (a route may document a smaller one, such as the sync
/// jobs' 100). Mirrored as `maximum` in the OpenAPI parameters.
pub const MAX_LIMIT: u32 = 1000;

/// The largest `offset` any list takes: deeper than any account's campaigns, contacts or tags,
/// small enough that no platform is asked for a page number near an integer's end.
pub const MAX_OFFSET: u64 = 10_000_000;

/// `limit`: `default` when absent, else 1–`max` (at most [`MAX_LIMIT`]).
pub fn limit<N: Into<i128>>(value: Option<N>, default: u32, max: u32) -> Result<u32> {
    let max = max.min(MAX_LIMIT);
    let Some(value) = value else {
        return Ok(default);
    };
    let value: i128 = value.into();
    u32::try_from(value)
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| {
            Error::invalid("limit", format!("`limit` must be between 1 and {max}."))
                .detail("minimum", 1)
                .detail("maximum", max)
        })
}

/// `offset`: 0 when absent, else 0–[`MAX_OFFSET`].
pub fn offset<N: Into<i128>>(value: Option<N>) -> Result<u64> {
    let Some(value) = value else {
        return Ok(0);
    };
    let value: i128 = value.into();
    u64::try_from(value)
        .ok()
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or_else(|| {
            Error::invalid(
                "offset",
                format!("`offset` must be between 0 and {MAX_OFFSET}."),
            )
            .detail("minimum", 0)
            .detail("maximum", MAX_OFFSET)
        })
}

/// `limit` and `offset` together (see [`limit`] and [`offset`]).
pub fn window<L: Into<i128>, O: Into<i128>>(
    limit_value: Option<L>,
    offset_value: Option<O>,
    default_limit: u32,
    max_limit: u32,
) -> Result<(u32, u64)> {
    Ok((
        limit(limit_value, default_limit, max_limit)?,
        offset(offset_value)?,
    ))
}

/// An opaque page token for lists paged by a row's sequence number (newest first): a version
/// prefix naming the list (`su1.`, `au1.`, `ms1.`) and the sequence number masked, so callers
/// pass it back unchanged rather than compute one.
pub fn seq_cursor(prefix: &str, seq: i64) -> String {
    format!("{prefix}{:x}", seq ^ 0x5a5a_5a5a)
}

/// The sequence number of a [`seq_cursor`] token of this list; `None` when absent or empty.
pub fn parse_seq_cursor(prefix: &str, token: Option<&str>) -> Result<Option<i64>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        Error::invalid(
            "cursor",
            "cursor is not one this API gave out: pass nextCursor from the previous page unchanged.",
        )
    };
    let hex = token.strip_prefix(prefix).ok_or_else(bad)?;
    if hex.is_empty() || hex.len() > 16 {
        return Err(bad());
    }
    let raw = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
    let seq = i64::try_from(raw).map_err(|_| bad())? ^ 0x5a5a_5a5a;
    if seq <= 0 {
        return Err(bad());
    }
    Ok(Some(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: &Error) -> &str {
        match e {
            Error::Coded { details, .. } => details["field"].as_str().unwrap_or_default(),
            other => panic!("not a coded answer: {other:?}"),
        }
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
}

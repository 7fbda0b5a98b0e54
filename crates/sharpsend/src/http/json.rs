//! The one strict parse of a request body (docs/security.md#security-model: a body is parsed once,
//! and that parse feeds both the tenancy gate and the handler).
//!
//! `serde_json` alone is lenient in ways that let two parsers of the same bytes disagree: a
//! `Deserializer` that is not `end()`ed accepts trailing bytes, a duplicate key silently keeps
//! the last value, a number too large for the target is skipped by one reader and refused by
//! another. Here every body becomes one [`Value`] under fixed rules:
//!
//! - the whole input is one JSON value (whitespace around it only; a trailing byte, NUL or
//!   invalid UTF-8 anywhere is refused);
//! - at most [`MAX_DEPTH`] nested arrays/objects;
//! - no object has the same key twice;
//! - integers fit in 64 bits (signed or unsigned); other numbers are finite and smaller in
//!   magnitude than 2^63, so no number is silently rounded to infinity or far past the
//!   precision any field of ours can use.

use std::{cell::RefCell, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::ApiError;

/// Deepest nesting of arrays and objects a body may have (the top-level value is depth 1).
pub const MAX_DEPTH: usize = 32;

/// The largest magnitude a non-integer number may have (2^63).
pub const MAX_FLOAT_MAGNITUDE: f64 = 9_223_372_036_854_775_808.0;

/// Parses a request body under the rules above. A refusal is `VALIDATION_ERROR` whose
/// `details.field` names where the problem is (`body` for syntax errors).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, ApiError> {
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Node {
        ctx: &ctx,
        path: String::new(),
        depth: 1,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match ctx.problem.into_inner() {
        Some((field, message)) => ApiError::validation(field, message),
        None => ApiError::validation(
            "body",
            format!(
                "Malformed JSON at line {}, column {}: {}.",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        ),
    })
}

/// serde_json's messages end in " at line L column C", which the sentence already says.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// The first rule a body broke, with the path to it (a duplicate key, the depth, a number).
#[derive(Default)]
struct Ctx {
    problem: RefCell<Option<(String, String)>>,
}

impl Ctx {
    fn refuse<E: de::Error>(&self, path: &str, message: String) -> E {
        let field = if path.is_empty() { "body" } else { path };
        let err = E::custom(&message);
        self.problem
            .borrow_mut()
            .get_or_insert_with(|| (field.to_owned(), message));
        err
    }
}

/// One value at `path` (`config.ids[2]`), `depth` levels down.
struct Node<'a> {
    ctx: &'a Ctx,
    path: String,
    depth: usize,
}

impl Node<'_> {
    fn child(&self, segment: fmt::Arguments<'_>) -> Self {
        let path = if self.path.is_empty() {
            segment.to_string().trim_start_matches('.').to_owned()
        } else {
            format!("{}{segment}", self.path)
        };
        Node {
            ctx: self.ctx,
            path,
            depth: self.depth + 1,
        }
    }

    fn check_depth<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(self.ctx.refuse(
                &self.path,
                format!("The request body nests arrays and objects more than {MAX_DEPTH} deep."),
            ));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        match Number::from_f64(v) {
            Some(n) if v.abs() < MAX_FLOAT_MAGNITUDE => Ok(Value::Number(n)),
            _ => Err(self.ctx.refuse(
                &self.path,
                "Numbers in a request body must be 64-bit integers or finite numbers smaller than 2^63 in magnitude.".to_owned(),
            )),
        }
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(format_args!("[{}]", items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let at = self.child(format_args!(".{key}"));
                return Err(self.ctx.refuse(
                    &at.path,
                    format!("The request body has the key `{key}` twice in one object."),
                ));
            }
            let value = map.next_value_seed(self.child(format_args!(".{key}")))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(body: &[u8]) -> (String, String) {
        let e = parse_strict(body).expect_err("refused");
        assert_eq!(e.code, domain::ErrorCode::ValidationError);
        (
            e.details["field"].as_str().unwrap_or_default().to_owned(),
            e.message.to_string(),
        )
    }

    #[test]
    fn accepts_ordinary_bodies_with_surrounding_whitespace() {
        let v = parse_strict(
            b" \n{\"a\": [1, -2, 3.5, \"x\", null, true, {\"b\": 18446744073709551615}]}\r\n ",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": [1, -2, 3.5, "x", null, true, {"b": 18_446_744_073_709_551_615_u64}]})
        );
        // Escaped and non-ASCII text is fine; only invalid UTF-8 is not.
        assert_eq!(
            parse_strict("\"é\\u00e9\\n\"".as_bytes()).unwrap(),
            json!("éé\n")
        );
    }

    #[test]
    fn trailing_bytes_nul_and_invalid_utf8_are_refused() {
        for body in [
            &b"{\"publisherId\":\"victim\"} x"[..],
            b"{\"full\":true}\x00",
            b"{\"full\":true}\xff",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1}{\"a\":2}",
            b"",
        ] {
            let (field, message) = refused(body);
            assert_eq!(field, "body", "{body:?}");
            assert!(message.starts_with("Malformed JSON"), "{message}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_their_path() {
        let (field, message) =
            refused(br#"{"publisherId":"mine","config":{},"publisherId":"victim"}"#);
        assert_eq!(field, "publisherId");
        assert!(message.contains("twice"), "{message}");
        let (field, _) = refused(br#"{"config":{"ids":[{"a":1,"a":1}]}}"#);
        assert_eq!(field, "config.ids[0].a");
    }

    #[test]
    fn numbers_out_of_range_are_refused() {
        for n in ["1e400", "-1e400", "1e300", "18446744073709551616", "9.3e18"] {
            let body = format!(r#"{{"unused": {n}}}"#);
            let (field, _) = refused(body.as_bytes());
            // serde_json itself refuses 1e400 as a syntax error; the rest are ours.
            assert!(field == "unused" || field == "body", "{n}: {field}");
        }
        assert!(parse_strict(b"[9007199254740993, -9223372036854775808, 1e18, 0.5e-300]").is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        let deep = format!(
            "{{\"config\":{}1{}}}",
            "{\"a\":".repeat(200),
            "}".repeat(200)
        );
        let (field, message) = refused(deep.as_bytes());
        assert!(field.starts_with("config.a.a"), "{field}");
        assert!(message.contains("deep"), "{message}");
    }
}

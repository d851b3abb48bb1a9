//! Canonical JSON (RFC 8785, JCS) for record bodies, so equal values hash to equal bytes.
//!
//! The rules, also written in `docs/ledger-format.md`:
//! - no insignificant whitespace;
//! - object members sorted by their keys' UTF-16 code units;
//! - strings escape only `"`, `\` and the controls U+0000..U+001F (`\b \t \n \f \r`
//!   by name, the rest as `\u00xx` in lowercase hex); everything else is literal UTF-8;
//! - integers are written exactly in decimal; other numbers in ECMAScript
//!   `Number.prototype.toString` form (shortest round-trip digits), `-0` as `0`.
//!
//! For every integer of magnitude at most 2^53 and every non-integer, this is RFC 8785
//! byte for byte. Integers beyond 2^53 are kept exact instead of being rounded to a double.

use serde_json::{Map, Number, Value};

/// The canonical bytes of `value`.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_canonical_json(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write_canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(members, out),
    }
}

fn write_object(members: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    if in_utf16_order(members) {
        // The common case (serde_json's map iterates in UTF-8 byte order, which is UTF-16
        // order for keys without characters above U+FFFF): no copy, no sort.
        write_members(members.iter(), out);
    } else {
        let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
        // serde_json orders keys by UTF-8 bytes; RFC 8785 orders by UTF-16 code units.
        // They differ only when a key holds characters above U+FFFF, but then they do.
        sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
        write_members(sorted.into_iter(), out);
    }
    out.push(b'}');
}

/// Whether the map iterates in RFC 8785 order already: each key before the next in
/// UTF-8 byte order, and no key with a four-byte character (where UTF-8 and UTF-16
/// orders part).
fn in_utf16_order(members: &Map<String, Value>) -> bool {
    let mut previous: Option<&[u8]> = None;
    for key in members.keys() {
        let key = key.as_bytes();
        if key.iter().any(|b| *b >= 0xf0) || previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
    }
    true
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_canonical_json(value, out);
    }
}

/// A JSON string: only `"`, `\` and control characters are escaped (the short forms
/// where JSON has them, else `\u00xx`); everything else is copied as UTF-8. Works on
/// bytes: no byte of a multi-byte UTF-8 character is below 0x80.
fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut copied = 0;
    // Skip 16-byte blocks with nothing to escape (a loop without an early exit, which
    // the compiler turns into vector compares); look at single bytes from the first
    // block that has something.
    let clean = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
    let mut from = 0;
    for block in bytes.chunks_exact(16) {
        if !block.iter().fold(true, |all, b| all & clean(*b)) {
            break;
        }
        from += 16;
    }
    for (i, &byte) in bytes.iter().enumerate().skip(from) {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    if let Some(n) = number.as_u64() {
        let _ = write!(out, "{n}");
    } else if let Some(n) = number.as_i64() {
        let _ = write!(out, "{n}");
    } else if let Some(x) = number.as_f64() {
        out.extend_from_slice(format_es_number(x).as_bytes());
    }
}

/// ECMAScript `Number.prototype.toString(x)` for a finite `x`.
fn format_es_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    if x < 0.0 {
        return format!("-{}", format_es_number(-x));
    }
    // Rust's `{:e}` prints the shortest digits that round-trip, as `d[.ddd]e<exp>`.
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1; // position of the decimal point relative to the digits
    if k <= n && n <= 21 {
        format!(
            "{digits}{}",
            "0".repeat(usize::try_from(n - k).unwrap_or(0))
        )
    } else if 0 < n && n <= 21 {
        let (int_part, frac_part) = digits.split_at(usize::try_from(n).unwrap_or(0));
        format!("{int_part}.{frac_part}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat(usize::try_from(-n).unwrap_or(0)))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let magnitude = (n - 1).unsigned_abs();
        if k == 1 {
            format!("{digits}e{sign}{magnitude}")
        } else {
            let (first, rest) = digits.split_at(1);
            format!("{first}.{rest}e{sign}{magnitude}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The plain reading of RFC 8785 the writer above must match: sort every object's
    /// keys by UTF-16 code units, escape character by character.
    fn reference(value: &Value, out: &mut String) {
        match value {
            Value::Object(members) => {
                let mut sorted: Vec<_> = members.iter().collect();
                sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(&Value::String(key.clone()), out);
                    out.push(':');
                    reference(value, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(item, out);
                }
                out.push(']');
            }
            Value::String(text) => {
                out.push('"');
                for ch in text.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\u{08}' => out.push_str("\\b"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\u{0c}' => out.push_str("\\f"),
                        '\r' => out.push_str("\\r"),
                        c if u32::from(c) < 0x20 => {
                            out.push_str(&format!("\\u{:04x}", u32::from(c)))
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            other => out.push_str(&String::from_utf8(canonical_json(other)).expect("utf-8")),
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        // Keys and strings from a mix of ASCII, control characters, and characters on
        // both sides of U+FFFF (where UTF-8 and UTF-16 orders part).
        let text = prop::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::char::range('\u{0}', '\u{7f}'),
                prop::char::range('\u{e000}', '\u{ffff}'),
                prop::char::range('\u{10000}', '\u{10ffff}'),
            ],
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_fast_writer_matches_the_reference(value in json_value()) {
            let mut expected = String::new();
            reference(&value, &mut expected);
            prop_assert_eq!(text(&value), expected);
        }
    }

    fn text(value: &Value) -> String {
        String::from_utf8(canonical_json(value)).expect("canonical JSON is UTF-8")
    }

    #[test]
    fn numbers_follow_ecmascript() {
        let cases: &[(f64, &str)] = &[
            (0.7, "0.7"),
            (1.0, "1"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (-2.5e30, "-2.5e+30"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, expected) in cases {
            assert_eq!(format_es_number(*x), *expected, "formatting {x:?}");
        }
        assert_eq!(text(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(text(&json!(i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn objects_are_sorted_and_compact() {
        let value = json!({"b": [1, {"z": null, "a": true}], "a": "x"});
        assert_eq!(text(&value), r#"{"a":"x","b":[1,{"a":true,"z":null}]}"#);
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+1F600 sorts after U+FF61 in UTF-8 order but before it in UTF-16 order.
        let value = json!({"\u{1F600}": 1, "\u{FF61}": 2});
        assert_eq!(text(&value), "{\"\u{1F600}\":1,\"\u{FF61}\":2}");
    }

    #[test]
    fn strings_escape_only_what_they_must() {
        let value = json!("q\"b\\s/\u{08}\u{0c}\n\r\t\u{01}\u{1f}é€");
        assert_eq!(
            text(&value),
            "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001fé€\""
        );
    }

    #[test]
    fn float_text_reparses_to_identical_bytes() {
        for x in [0.1, 1e19, 1e-7, 3.0e15, 123456789.125, 2f64.powi(60)] {
            let first = canonical_json(&json!(x));
            let reparsed: Value = serde_json::from_slice(&first).expect("canonical JSON parses");
            assert_eq!(canonical_json(&reparsed), first, "value {x:?}");
        }
    }
}

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
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // serde_json orders keys by UTF-8 bytes; RFC 8785 orders by UTF-16 code units. They
    // differ only when a key holds characters above U+FFFF, but then they do differ.
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push(b'{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_canonical_json(value, out);
    }
    out.push(b'}');
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(n) = number.as_u64() {
        out.extend_from_slice(n.to_string().as_bytes());
    } else if let Some(n) = number.as_i64() {
        out.extend_from_slice(n.to_string().as_bytes());
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
    use serde_json::json;

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

//! Property: changing any single byte of any hashed field of any record of an exported
//! chain makes verification fail at exactly that record (or the line no longer parses).

use ledgerflow_ledger::{
    export_jsonl, parse_jsonl_line, verify_chain, ChainFault, Hash, Record, RecordDraft, RunId,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn build_chain(bodies: &[Value]) -> Vec<Record> {
    let run_id = RunId::new_v4();
    let mut prev = Hash::GENESIS;
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let seq = i as u64 + 1;
            let record = RecordDraft {
                run_id,
                seq,
                at_ms: 1_700_000_000_000 + i as i64,
                kind: format!("kind{}", i % 3),
                body: body.clone(),
                state_hash: Hash::of(&seq.to_le_bytes()),
            }
            .seal(prev);
            prev = record.hash();
            record
        })
        .collect()
}

fn arb_body() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|x| json!(x)),
        "[a-z0-9 é]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The hashed fields of an exported line and how to flip one byte of each.
const FIELDS: &[&str] = &[
    "run_id",
    "seq",
    "at_ms",
    "kind",
    "body",
    "prev_hash",
    "state_hash",
    "hash",
];

/// Changes one character inside the JSON text of `field`, keeping the line parseable
/// where possible. Returns `None` when the change would leave the value as it was.
fn mutate_field(line: &str, field: &str, pick: usize) -> Option<String> {
    let mut obj: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    let value = obj.get_mut(field)?;
    match value {
        Value::String(text) => {
            let bytes = text.as_bytes();
            let at = pick % bytes.len().max(1);
            let mut chars: Vec<char> = text.chars().collect();
            if chars.is_empty() {
                *text = "x".into();
            } else {
                let i = at % chars.len();
                let c = chars[i];
                chars[i] = match c {
                    '0'..='8' | 'a'..='e' => char::from(c as u8 + 1),
                    '9' => '0',
                    'f' => 'a',
                    '-' => return None, // uuid punctuation: changing it makes the id unparsable
                    _ => 'q',
                };
                if chars[i] == c {
                    return None;
                }
                *text = chars.into_iter().collect();
            }
        }
        Value::Number(n) => {
            let old = n.as_i64()?;
            *value = json!(old ^ (1i64 << (pick % 8)));
        }
        body => {
            let mut text = serde_json::to_string(body).ok()?;
            if text.len() < 2 {
                return None;
            }
            text.insert_str(
                1,
                if text.starts_with('{') {
                    "\"tamper\":1,"
                } else {
                    "0,"
                },
            );
            *body = serde_json::from_str(&text).ok()?;
        }
    }
    serde_json::to_string(&obj).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_field_change_fails_at_that_record(
        bodies in prop::collection::vec(arb_body(), 1..6),
        target in any::<prop::sample::Index>(),
        field in prop::sample::select(FIELDS),
        pick in any::<usize>(),
    ) {
        let chain = build_chain(&bodies);
        let mut out = Vec::new();
        export_jsonl(&chain, &mut out).expect("export to memory");
        let text = String::from_utf8(out).expect("utf-8");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let victim = target.index(lines.len());
        let Some(changed) = mutate_field(&lines[victim], field, pick) else {
            return Ok(());
        };
        prop_assume!(changed != lines[victim]);
        lines[victim] = changed;

        let parsed: Result<Vec<Record>, String> =
            lines.iter().map(|l| parse_jsonl_line(l)).collect();
        let Ok(records) = parsed else {
            return Ok(()); // an unparsable line is rejected before verification
        };
        let err = verify_chain(&records).expect_err("a changed field must break the chain");
        prop_assert_eq!(err.seq, records[victim].seq(), "fault: {}", err);
        if field != "run_id" && field != "seq" {
            let is_hash_fault = matches!(err.fault, ChainFault::HashMismatch { .. });
            prop_assert!(is_hash_fault, "unexpected fault {}", err);
        }
    }

    #[test]
    fn any_single_byte_change_of_the_hash_input_changes_the_hash(
        bodies in prop::collection::vec(arb_body(), 1..3),
        pick in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let record = &build_chain(&bodies)[0];
        let input = ledgerflow_ledger::hash_input(
            record.run_id(), record.seq(), record.at_ms(), record.kind(), record.body(),
            record.prev_hash(), record.state_hash(),
        );
        let mut changed = input.clone();
        let i = pick.index(changed.len());
        changed[i] ^= 1 << bit;
        prop_assert_eq!(Hash::of(&input), record.hash());
        prop_assert_ne!(Hash::of(&changed), record.hash());
    }
}

#[test]
fn reordered_and_missing_records_are_named() {
    let chain = build_chain(&[json!(1), json!(2), json!(3)]);
    let swapped = [&chain[0], &chain[2], &chain[1]];
    let err = verify_chain(swapped).expect_err("out of order");
    assert_eq!(err.seq, 3);
    assert!(matches!(
        err.fault,
        ChainFault::SeqGap {
            expected: 2,
            found: 3
        }
    ));

    let other = build_chain(&[json!(9), json!(8)]);
    let mixed = [&chain[0], &other[1]];
    let err = verify_chain(mixed).expect_err("foreign run");
    assert!(matches!(err.fault, ChainFault::ForeignRun { .. }));

    let first_missing = [&chain[1]];
    let err = verify_chain(first_missing).expect_err("does not start at 1");
    assert!(matches!(
        err.fault,
        ChainFault::SeqGap {
            expected: 1,
            found: 2
        }
    ));
}

#[test]
fn relinked_record_with_valid_hash_fails_on_prev() {
    let chain = build_chain(&[json!(1), json!(2)]);
    // An attacker rewrites record 2 and re-seals it, but cannot fix the link it cites.
    let forged = RecordDraft {
        run_id: chain[1].run_id(),
        seq: 2,
        at_ms: chain[1].at_ms(),
        kind: chain[1].kind().into(),
        body: json!("forged"),
        state_hash: chain[1].state_hash(),
    }
    .seal(Hash::of(b"not the previous record"));
    let err = verify_chain([&chain[0], &forged]).expect_err("bad link");
    assert_eq!(err.seq, 2);
    assert!(matches!(err.fault, ChainFault::PrevMismatch { .. }));
}

#!/usr/bin/env python3
"""Independent verifier of ledgerflow JSONL exports, written from docs/ledger-format.md alone.

It shares no code with the Rust implementation, so agreement between the two is evidence
that the published format is complete. Needs Python 3.8+ and the `blake3` package.

    python3 tools/ledger_verify.py verify EXPORT.jsonl     # exit 0 iff every chain verifies
    python3 tools/ledger_verify.py vectors VECTORS.json    # check the published test vectors
    python3 tools/ledger_verify.py gen-vectors INPUT.json  # print vectors for the given fields
"""
import json
import math
import struct
import sys
import uuid
from collections import OrderedDict

try:
    from blake3 import blake3
except ImportError:
    sys.exit(
        "ledger_verify.py needs the blake3 package: python3 -m pip install blake3"
    )

DOMAIN = b"ledgerflow.record.v1\x00"
LINE_FORMAT = "ledgerflow.record.v1"
GENESIS = "0" * 64


def es_number(x):
    """ECMAScript Number.prototype.toString for a finite float."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + es_number(-x)
    mantissa, _, exponent = ("%r" % x).partition("e")  # repr gives shortest round-trip digits
    if "." in mantissa:
        int_part, frac_part = mantissa.split(".")
    else:
        int_part, frac_part = mantissa, ""
    exp10 = int(exponent) if exponent else 0
    digits = (int_part + frac_part).lstrip("0")
    point = len(int_part) + exp10 - (len(int_part + frac_part) - len((int_part + frac_part).lstrip("0")))
    digits = digits.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    if k == 1:
        return digits + "e" + sign + str(abs(e))
    return digits[0] + "." + digits[1:] + "e" + sign + str(abs(e))


def canon_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif c < 0x20:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(v):
    """Canonical JSON text of a value parsed by json.loads."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("non-finite number")
        return es_number(v)
    if isinstance(v, str):
        return canon_string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canon_string(k) + ":" + canonical(v[k]) for k in keys) + "}"
    raise TypeError("not a JSON value: %r" % (v,))


def hash_input(rec):
    body = canonical(rec["body"]).encode("utf-8")
    kind = rec["kind"].encode("utf-8")
    return b"".join([
        DOMAIN,
        uuid.UUID(rec["run_id"]).bytes,
        struct.pack(">Q", rec["seq"]),
        struct.pack(">q", rec["at_ms"]),
        struct.pack(">Q", len(kind)), kind,
        struct.pack(">Q", len(body)), body,
        bytes.fromhex(rec["prev_hash"]),
        bytes.fromhex(rec["state_hash"]),
    ])


def record_hash(rec):
    return blake3(hash_input(rec)).hexdigest()


def verify_lines(lines):
    """Returns a list of (run_id, seq, reason) for the first bad record of each bad run."""
    chains = OrderedDict()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("format") != LINE_FORMAT:
            return [(None, None, "line %d: unknown format %r" % (number, rec.get("format")))]
        chains.setdefault(rec["run_id"], []).append(rec)
    failures = []
    for run_id, recs in chains.items():
        prev, expected_seq = GENESIS, 1
        for rec in recs:
            if rec["seq"] != expected_seq:
                failures.append((run_id, rec["seq"], "seq gap: expected %d" % expected_seq))
                break
            computed = record_hash(rec)
            if computed != rec["hash"]:
                failures.append((run_id, rec["seq"], "hash mismatch: fields hash to " + computed))
                break
            if rec["prev_hash"] != prev:
                failures.append((run_id, rec["seq"], "prev_hash mismatch"))
                break
            prev, expected_seq = rec["hash"], expected_seq + 1
    return failures


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, path = argv[1], argv[2]
    with open(path, encoding="utf-8") as f:
        if command == "verify":
            failures = verify_lines(f.readlines())
            for run_id, seq, reason in failures:
                print("FAIL run %s seq %s: %s" % (run_id, seq, reason))
            if not failures:
                print("all chains verified")
            return 1 if failures else 0
        data = json.load(f)
    if command == "gen-vectors":
        for v in data:
            v["canonical_body"] = canonical(v["body"])
            v["hash_input_hex"] = hash_input(v).hex()
            v["hash"] = record_hash(v)
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if command == "vectors":
        bad = 0
        for v in data:
            ok = (canonical(v["body"]) == v["canonical_body"]
                  and hash_input(v).hex() == v["hash_input_hex"]
                  and record_hash(v) == v["hash"])
            if not ok:
                bad += 1
                print("vector %r: MISMATCH" % v["name"])
        print("%d passed, %d failed" % (len(data) - bad, bad))
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

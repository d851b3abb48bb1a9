#!/usr/bin/env python3
"""Independent verifier of ledgerflow JSONL exports, written from docs/ledger-format.md alone.

It shares no code with the Rust implementation, so agreement between the two is evidence
that the published format is complete. Needs Python 3.8+ and the `blake3` package.

    python3 tools/ledger_verify.py verify EXPORT.jsonl [--public-key KEY|@FILE] [--proof PATH]
        # exit 0 iff every chain verifies and, when EXPORT.jsonl.proof.json (or --proof)
        # exists, the signed checkpoint and the global log's leaves or proofs match
    python3 tools/ledger_verify.py vectors VECTORS.json    # check the published test vectors
    python3 tools/ledger_verify.py invalid INVALID.json    # every line there must be refused
    python3 tools/ledger_verify.py gen-vectors INPUT.json  # print vectors for the given fields
"""
import base64
import hashlib
import json
import math
import re
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


BODY_DEPTH_MAX = 100
MEMBERS = {"format", "run_id", "seq", "at_ms", "kind", "body", "prev_hash", "state_hash", "hash"}
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate key %r" % key)
        out[key] = value
    return out


def depth(value):
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def parse_line(line):
    """One exported line, as the format section of docs/ledger-format.md requires."""
    try:
        rec = json.loads(line, object_pairs_hook=no_duplicates)
    except RecursionError:
        raise ValueError("nested too deeply")
    if not isinstance(rec, dict) or set(rec) != MEMBERS:
        raise ValueError("members must be exactly %s" % sorted(MEMBERS))
    if rec["format"] != LINE_FORMAT:
        raise ValueError("unknown format %r" % rec["format"])
    if not isinstance(rec["run_id"], str) or not RUN_ID.match(rec["run_id"]):
        raise ValueError("run_id must be the lowercase hyphenated UUID")
    for field in ("prev_hash", "state_hash", "hash"):
        if not isinstance(rec[field], str) or not HEX64.match(rec[field]):
            raise ValueError("%s must be 64 lowercase hex digits" % field)
    for field in ("seq", "at_ms"):
        if not isinstance(rec[field], int) or isinstance(rec[field], bool):
            raise ValueError("%s must be an integer" % field)
    if depth(rec["body"]) > BODY_DEPTH_MAX:
        raise ValueError("the body nests deeper than %d levels" % BODY_DEPTH_MAX)
    return rec


def verify_lines(lines):
    """Returns a list of (run_id, seq, reason) for the first bad record of each bad run."""
    chains = OrderedDict()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = parse_line(line)
        except ValueError as e:
            return [(None, None, "line %d: %s" % (number, e))]
        chains.setdefault(rec["run_id"], []).append(rec)
    failures = []
    by_key = {(r["run_id"], r["seq"]): r for recs in chains.values() for r in recs}
    for run_id, recs in chains.items():
        # Lineage: a fork or a subworkflow cites a record of its parent; check it when the
        # parent is in the export.
        first = recs[0]
        cited = None
        if first["kind"] == "forked" and first["seq"] == 1:
            b = first["body"]
            cited = (b.get("from_run_id"), b.get("from_seq"), b.get("from_record_hash"))
        elif first["kind"] == "started" and first["seq"] == 1:
            parent = first["body"].get("parent") or {}
            after = parent.get("after")
            if after:
                cited = (parent.get("run_id"), after.get("seq"), after.get("hash"))
        if cited and cited[0] in chains:
            target = by_key.get((cited[0], cited[1]))
            if target is None or target["hash"] != cited[2]:
                failures.append((run_id, 1, "lineage: cites record %s of run %s, which %s"
                                 % (cited[1], cited[0], "is not in its ledger" if target is None
                                    else "has another hash")))
                continue
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
        else:
            bad_state = replay(recs)
            if bad_state:
                failures.append((run_id, bad_state[0], bad_state[1]))
    return failures


# --- Run state (docs/ledger-format.md, "Run state") ------------------------------------

STATE_DOMAIN = b"ledgerflow.state.v1\x00"


def state_hash(state):
    without_head = {k: v for k, v in state.items() if k != "head"}
    return blake3(STATE_DOMAIN + canonical(without_head).encode("utf-8")).hexdigest()


def merge_patch(old, patch):
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            base = out.get(key)
            out[key] = merge_patch(base if isinstance(base, dict) else {}, value)
        else:
            out[key] = value
    return out


def apply_record(state, rec):
    """The state after `rec`, from the state before it (None before the first record)."""
    kind, b, at, seq = rec["kind"], rec["body"], rec["at_ms"], rec["seq"]

    def fresh(**members):
        base = {"run_id": rec["run_id"], "workflow_id": b["workflow_id"],
                "workflow_version": b["workflow_version"], "status": "running",
                "paused": False, "node": None, "vars": {}, "waiting": None,
                "pending_effect": None, "output": None, "failure": None,
                "cancel_reason": None, "ended_seq": None, "parent": None,
                "created_at_ms": at, "updated_at_ms": at}
        base.update(members)
        return base

    if kind == "started":
        return fresh(node=b["node"], vars=b["vars"], parent=b.get("parent"))
    if kind == "forked":
        return fresh(status=b["status"], node=b["node"], vars=b["vars"],
                     waiting=b["waiting"], pending_effect=b["pending_effect"])
    s = json.loads(json.dumps(state))
    s["updated_at_ms"] = at

    def step():
        change = b.get("vars")
        if change and "patch" in change:
            s["vars"] = merge_patch(s["vars"], change["patch"])
        elif change and "set" in change:
            s["vars"] = change["set"]

    def end(status):
        s["status"], s["ended_seq"] = status, seq

    def carry_on(result_key, result, then):
        if result_key is not None:
            s["vars"][result_key] = result
        if "next" in then:
            s["status"], s["node"] = "running", then["next"]
        else:
            end("completed")
            s["output"] = then["complete"]

    def wait(key, reason, until, result_key, then):
        s["status"] = "waiting"
        s["waiting"] = {"wait_key": key, "reason": reason, "until_ms": until, "prompt": None,
                        "choices": [], "result_key": result_key, "then": then}

    if kind == "advanced":
        step()
        s["node"] = b["next"]
    elif kind == "waiting":
        step()
        s["status"], s["waiting"] = "waiting", b["wait"]
    elif kind == "effect_requested":
        step()
        s["pending_effect"] = {"effect": b["effect"], "idempotency_key": b["idempotency_key"],
                               "then": b["then"], "attempt": 1}
    elif kind == "effect_completed":
        pending, s["pending_effect"] = s["pending_effect"], None
        carry_on(pending["effect"]["result_key"], b["result"], pending["then"])
    elif kind == "effect_waiting":
        pending, s["pending_effect"] = s["pending_effect"], None
        wait(b["wait_key"], "job", None, pending["effect"]["result_key"], pending["then"])
    elif kind == "effect_retry_scheduled":
        s["pending_effect"]["attempt"] += 1
        wait(None, "retry", b["retry_at_ms"], None, {"next": s["node"] or ""})
    elif kind == "effect_failed":
        s["pending_effect"] = None
        end("failed")
        s["failure"] = {"code": "effect_failed", "message": b["error"]}
    elif kind == "event_emitted":
        step()
        carry_on(None, None, b["then"])
    elif kind == "subworkflow_started":
        step()
        if b["mode"] == "async":
            carry_on(b["result_key"], b["child_run_id"], b["then"])
        else:
            wait("child:" + b["child_run_id"], "subworkflow", None, b["result_key"], b["then"])
    elif kind == "resumed":
        w, s["waiting"] = s["waiting"], None
        carry_on(w["result_key"], b["payload"], w["then"])
    elif kind == "timer_fired":
        w, s["waiting"] = s["waiting"], None
        carry_on(w["result_key"], b["due_at_ms"], w["then"])
    elif kind == "completed":
        step()
        end("completed")
        s["output"] = b["output"]
    elif kind == "failed":
        if b.get("node") is not None:
            step()
        s["waiting"] = s["pending_effect"] = None
        end("failed")
        s["failure"] = b["failure"]
    elif kind == "paused":
        s["paused"] = True
    elif kind == "unpaused":
        s["paused"] = False
    elif kind == "cancelled":
        s["waiting"] = s["pending_effect"] = None
        end("cancelled")
        s["cancel_reason"] = b["reason"]
    else:
        raise ValueError("unknown record kind %r" % kind)
    return s


def replay(recs):
    """Replays one run's records; returns (seq, reason) of the first record whose
    state_hash is not the hash of the state it produces, or None."""
    state = None
    for rec in recs:
        try:
            state = apply_record(state, rec)
        except (KeyError, TypeError, ValueError) as e:
            return rec["seq"], "cannot apply: %r" % (e,)
        if state_hash(state) != rec["state_hash"]:
            return rec["seq"], "state_hash is not the hash of the state this record produces"
    return None


# --- The global log (docs/ledger-format.md, "The global log") ---------------------------

LEAF_DOMAIN = b"ledgerflow.leaf.v1\x00"
PROOF_FORMAT = "ledgerflow.proof.v1"


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(rec):
    data = (LEAF_DOMAIN + uuid.UUID(rec["run_id"]).bytes + struct.pack(">Q", rec["seq"])
            + bytes.fromhex(rec["hash"]))
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(leaves):
    """RFC 6962 Merkle tree hash of a list of leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_ok(leaf_index, tree_size, leaf, path, root):
    """RFC 9162 section 2.1.3.2."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# Ed25519 signature verification, from RFC 8032 section 5.1 (verification only).
ED_P = 2 ** 255 - 19
ED_L = 2 ** 252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_I = pow(2, (ED_P - 1) // 4, ED_P)


def ed_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % ED_P
    bb = (y1 + x1) * (y2 + x2) % ED_P
    cc = 2 * t1 * t2 * ED_D % ED_P
    dd = 2 * z1 * z2 % ED_P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def ed_mul(s, point):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = ed_add(q, point)
        point = ed_add(point, point)
        s >>= 1
    return q


def ed_equal(a, b):
    return ((a[0] * b[2] - b[0] * a[2]) % ED_P == 0
            and (a[1] * b[2] - b[1] * a[2]) % ED_P == 0)


def ed_recover_x(y, sign):
    if y >= ED_P:
        return None
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P != 0:
        x = x * ED_I % ED_P
    if (x * x - x2) % ED_P != 0:
        return None
    if (x & 1) != sign:
        x = ED_P - x
    return x


def ed_decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = ed_recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % ED_P)


ED_GY = 4 * pow(5, ED_P - 2, ED_P) % ED_P
ED_G = (ed_recover_x(ED_GY, 0), ED_GY, 1, ed_recover_x(ED_GY, 0) * ED_GY % ED_P)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    a = ed_decompress(public)
    r = ed_decompress(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= ED_L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % ED_L
    return ed_equal(ed_mul(s, ED_G), ed_add(r, ed_mul(h, a)))


def parse_key(text):
    """A signed-note verifier key: name+<8 hex key id>+<base64 of 0x01 || public key>."""
    name, key_id, key = text.strip().split("+", 2)
    raw = base64.b64decode(key, validate=True)
    if len(key_id) != 8 or len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 signed-note verifier key")
    if sha256(name.encode() + b"\n" + raw)[:4] != bytes.fromhex(key_id):
        raise ValueError("the key id does not match the key")
    return name, bytes.fromhex(key_id), raw[1:]


def check_checkpoint(note, key):
    """Returns (size, root bytes) of a checkpoint whose signature by key verifies."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("checkpoint: no blank line after the body")
    lines = body.split("\n")
    if len(lines) != 3 or not lines[1].isdigit():
        raise ValueError("checkpoint: the body is not origin, size, root")
    size, root = int(lines[1]), base64.b64decode(lines[2], validate=True)
    name, key_id, public = key
    signed = (body + "\n").encode()
    for line in signatures.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        sig_name, _, sig = line[2:].partition(" ")
        raw = base64.b64decode(sig, validate=True)
        if sig_name == name and raw[:4] == key_id:
            if ed25519_verify(public, signed, raw[4:]):
                return size, root
            raise ValueError("checkpoint: the signature by %s does not verify" % name)
    raise ValueError("checkpoint: no signature by key %s" % name)


def verify_proof(records, proof, key_text):
    """Checks an export against its proof file; returns a list of failure strings."""
    if proof.get("format") != PROOF_FORMAT:
        return ["proof file: unknown format %r" % proof.get("format")]
    try:
        key = parse_key(key_text if key_text else (proof.get("public_key") or ""))
        size, root = check_checkpoint(proof["checkpoint"], key)
    except ValueError as e:
        return [str(e)]
    if size != proof["tree_size"] or root.hex() != proof["root"]:
        return ["proof file: tree_size or root differ from the checkpoint's"]
    by_key = {(r["run_id"], r["seq"]): r for r in records}
    if proof["complete"]:
        if len(proof["leaves"]) != size:
            return ["proof file: %d leaves for a tree of %d" % (len(proof["leaves"]), size)]
        leaves = []
        for i, (run_id, seq) in enumerate(proof["leaves"]):
            rec = by_key.get((run_id, seq))
            if rec is None:
                return ["leaf %d: record %d of run %s is missing from the export" % (i, seq, run_id)]
            leaves.append(leaf_hash(rec))
        if mth(leaves) != root:
            return ["the exported records do not hash to the checkpoint's root"]
        covered = size
    else:
        for p in proof["proofs"]:
            rec = by_key.get((p["run_id"], p["seq"]))
            if rec is None:
                return ["record %d of run %s is missing from the export" % (p["seq"], p["run_id"])]
            path = [bytes.fromhex(h) for h in p["path"]]
            if not inclusion_ok(p["leaf_index"], size, leaf_hash(rec), path, root):
                return ["record %d of run %s is not leaf %d of the signed log"
                        % (p["seq"], p["run_id"], p["leaf_index"])]
        covered = len(proof["proofs"])
    print("checkpoint of tree size %d verified; %d records proven in the signed log%s"
          % (size, covered, "" if len(records) == covered
             else "; %d records not covered" % (len(records) - covered)))
    return []


def artifact_cites(value, out):
    """Every {"$artifact": {"digest", "size", ...}} reference in a body."""
    if isinstance(value, dict):
        ref = value.get("$artifact") if len(value) == 1 else None
        if isinstance(ref, dict) and isinstance(ref.get("digest"), str) and isinstance(ref.get("size"), int):
            out.add((ref["digest"], ref["size"]))
            return
        for v in value.values():
            artifact_cites(v, out)
    elif isinstance(value, list):
        for v in value:
            artifact_cites(v, out)


def verify_artifacts(records, directory):
    """Checks EXPORT.artifacts/<digest> files against the digests the records cite."""
    import os
    if not os.path.isdir(directory):
        return []
    cites = set()
    for rec in records:
        artifact_cites(rec["body"], cites)
    problems, ok = [], 0
    for digest, size in sorted(cites):
        path = os.path.join(directory, digest)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != size or blake3(data).hexdigest() != digest:
            problems.append("artifact %s: its bytes do not match the digest or size cited" % digest)
        else:
            ok += 1
    if not problems:
        print("%d artifacts match their digests" % ok)
    return problems


def option(argv, name):
    if name in argv:
        i = argv.index(name)
        value = argv[i + 1]
        del argv[i:i + 2]
        return value
    return None


def main(argv):
    argv = list(argv)
    key_text = option(argv, "--public-key")
    proof_path = option(argv, "--proof")
    if key_text and key_text.startswith("@"):
        with open(key_text[1:], encoding="utf-8") as f:
            key_text = f.read()
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, path = argv[1], argv[2]
    with open(path, encoding="utf-8") as f:
        if command == "verify":
            lines = f.readlines()
            failures = verify_lines(lines)
            for run_id, seq, reason in failures:
                print("FAIL run %s seq %s: %s" % (run_id, seq, reason))
            if not failures:
                print("all chains verified; every state_hash matches the replayed state")
            records = [parse_line(l) for l in lines if l.strip()] if not failures else []
            artifact_problems = verify_artifacts(records, path + ".artifacts")
            for problem in artifact_problems:
                print("FAIL " + problem)
            failures = failures + [(None, None, p) for p in artifact_problems]
            proof_path = proof_path or path + ".proof.json"
            try:
                with open(proof_path, encoding="utf-8") as pf:
                    proof = json.load(pf)
            except FileNotFoundError:
                print("no proof file %s: a cut tail or a deleted run cannot be detected" % proof_path)
                return 1 if failures else 0
            problems = verify_proof(records, proof, key_text)
            for problem in problems:
                print("FAIL " + problem)
            return 1 if failures or problems else 0
        data = json.load(f)
    if command == "gen-vectors":
        for v in data:
            v["canonical_body"] = canonical(v["body"])
            v["hash_input_hex"] = hash_input(v).hex()
            v["hash"] = record_hash(v)
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if command == "invalid":
        bad = 0
        for v in data:
            try:
                parse_line(v["line"])
                bad += 1
                print("invalid vector %r: ACCEPTED" % v["name"])
            except ValueError:
                pass
        parse_line(data[0]["valid_line"])
        print("%d refused, %d accepted" % (len(data) - bad, bad))
        return 1 if bad else 0
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

#!/usr/bin/env python3
"""Checks that the workspace's declared minimum Rust version (rust-version in Cargo.toml)
is at least what every locked dependency declares it needs, so README's minimum is true.

Usage: python3 tools/check_msrv.py   (from the repository root; runs `cargo metadata`)
Exit 0 when the claim holds, 1 (listing the packages that need more) when it does not.
"""
import json
import subprocess
import sys


def version_key(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = set(metadata["workspace_members"])
    declared = {
        p["rust_version"]
        for p in metadata["packages"]
        if p["id"] in members and p.get("rust_version")
    }
    if len(declared) != 1:
        print(f"workspace members declare rust-version {sorted(declared)}: expected one")
        return 1
    claimed = declared.pop()
    needs_more = sorted(
        (version_key(p["rust_version"]), p["name"], p["version"], p["rust_version"])
        for p in metadata["packages"]
        if p["id"] not in members
        and p.get("rust_version")
        and version_key(p["rust_version"]) > version_key(claimed)
    )
    if needs_more:
        print(f"rust-version {claimed} is too low for the locked dependencies:")
        for _, name, version, rust in needs_more:
            print(f"  {name} {version} needs Rust {rust}")
        return 1
    highest = max(
        (p["rust_version"] for p in metadata["packages"] if p.get("rust_version")),
        key=version_key,
    )
    print(f"ok: rust-version {claimed}; the most any locked package needs is {highest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

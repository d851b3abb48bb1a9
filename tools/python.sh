#!/usr/bin/env bash
# The Python package: builds the extension (maturin, release) into a virtualenv and runs
# the Python quickstart (`tools/python.sh example`) or the Python tests
# (`tools/python.sh test`), or benchmarks it beside its peers (`tools/python.sh bench`,
# which also installs the peers from PyPI; not in CI). The venv is .venv-python, or
# $LEDGERFLOW_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LEDGERFLOW_VENV:-$PWD/.venv-python}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r crates/python/requirements-dev.txt
VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
  "$venv/bin/maturin" develop --release --quiet -m crates/python/Cargo.toml
case "${1:-test}" in
  example)
    "$venv/bin/python" examples/python/quickstart.py
    ;;
  test)
    "$venv/bin/python" -m pytest -q crates/python/tests
    ;;
  bench)
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "abstractruntime==0.13.*" "langgraph-checkpoint-sqlite==3.*"
    shift
    "$venv/bin/python" tools/python_bench.py "$@"
    ;;
  *)
    echo "usage: tools/python.sh example|test|bench [steps|saver]" >&2
    exit 2
    ;;
esac

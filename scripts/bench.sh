#!/usr/bin/env bash
# Ferroswitch benchmark: bash scripts/bench.sh SCENARIO [options]
# (see `python3 scripts/bench.py --help`). Runs scripts/setup.sh quietly first
# (packages, hugepages), then the Python orchestration. JSON results on stdout,
# progress on stderr, logs under --out (default bench-out/).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

rc=0
setup_out="$(bash "$here/setup.sh" 2>&1)" || rc=$?
if [ "$rc" -eq 2 ]; then
    # Only cargo is missing: the peers can still be measured, ferroswitch is skipped.
    printf '%s\n' "$setup_out" >&2
elif [ "$rc" -ne 0 ]; then
    printf '%s\n' "$setup_out" >&2
    echo "bench.sh: scripts/setup.sh failed ($rc)" >&2
    exit "$rc"
elif [ -n "$setup_out" ]; then
    printf '%s\n' "$setup_out" >&2   # warnings (e.g. fewer hugepages than wanted)
fi

exec python3 "$here/bench.py" "$@"

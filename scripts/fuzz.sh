#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain (the
# SanitizerCoverage flags cargo-fuzz would pass, without a nightly-only
# sanitizer): every target for SECONDS seconds (default 20).
#   dataplane/core/fuzz: parse_frame, pipeline, dhcp_server, ofctl_flow,
#                        l2pop_responder, uplink (the switching core, its
#                        tunnels and its flow syntax; no DPDK)
#   control/fuzz:        control_request (control-socket request lines),
#                        api_body (Neutron API bodies on a real SQLite file)
# Corpora are kept under <crate>/fuzz/corpus/.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-20}"
shift || true
declare -A crate_of=(
    [parse_frame]=dataplane/core/fuzz [pipeline]=dataplane/core/fuzz [dhcp_server]=dataplane/core/fuzz
    [ofctl_flow]=dataplane/core/fuzz [l2pop_responder]=dataplane/core/fuzz [uplink]=dataplane/core/fuzz
    [control_request]=control/fuzz [api_body]=control/fuzz
)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(parse_frame pipeline dhcp_server ofctl_flow l2pop_responder uplink control_request api_body)
triple="$(rustc -vV | sed -n 's/^host: //p')"
built=""
for t in "${targets[@]}"; do
    dir="${crate_of[$t]:-}"
    [ -n "$dir" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    cd "$root/$dir"
    if [[ " $built " != *" $dir "* ]]; then
        # --target keeps the instrumentation out of build scripts.
        RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
            cargo build --release --target "$triple" --target-dir target/cov --bins
        built="$built $dir"
    fi
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${secs}s" >&2
    "target/cov/$triple/release/$t" "corpus/$t" -max_total_time="$secs" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 3
done

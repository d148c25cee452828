#!/usr/bin/env bash
# Coverage-guided fuzzing of the switching core with libFuzzer on the stable
# toolchain (the SanitizerCoverage flags cargo-fuzz would pass, without a
# nightly-only sanitizer): every target for SECONDS seconds (default 20).
# No DPDK needed. Corpora are kept under dataplane/core/fuzz/corpus/.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-20}"
shift || true
cd "$root/dataplane/core/fuzz"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(parse_frame pipeline)
triple="$(rustc -vV | sed -n 's/^host: //p')"
# --target keeps the instrumentation out of build scripts.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --target "$triple" --target-dir target/cov --bins
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${secs}s" >&2
    "target/cov/$triple/release/$t" "corpus/$t" -max_total_time="$secs" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 3
done

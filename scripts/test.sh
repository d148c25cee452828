#!/usr/bin/env bash
# Runs every test of Ferroswitch: unit, property and end-to-end tests (the
# real daemon on DPDK virtual devices and network namespaces). Installs what
# is missing first (scripts/setup.sh). Safe to run twice.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh || { rc=$?; [ "$rc" -eq 2 ] && echo "test: cargo is required" >&2; exit "$rc"; }
# Lints are tests: formatting, then clippy with warnings as errors (the
# workspace lints forbid unsafe outside ffi/ and want a SAFETY comment on
# every unsafe block there).
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the daemon binaries: build them first. The `ci`
# profile is `release` without LTO: optimised code, quick links.
cargo build --profile ci --workspace --bins
# One switch at a time: a PMD thread owns core 1 while a test runs.
cargo test --profile ci --workspace --lib --bins --tests -- --test-threads=1
# Every Criterion benchmark once, as a test (the pipeline one runs the EAL).
cargo test --profile ci -p ferroswitch --benches
# The NORMAL action against the real OVS-DPDK, frame for frame (skips, with
# a message, only where OVS-DPDK cannot run).
python3 scripts/ovs_diff.py --vswitchd target/ci/vswitchd
# The OpenFlow flow tables (every match and action, Neutron's firewall flows) against OVS-DPDK, frame for frame.
python3 scripts/ovs_flow_diff.py --vswitchd target/ci/vswitchd
# The Neutron API against the real Neutron 29.0.0, step for step (installs
# it into a cached virtualenv the first time); docs/NEUTRON.md.
python3 scripts/neutron_diff.py --vswitchd target/ci/vswitchd
# The Debian package and its systemd unit, installed, run (as the user
# ferroswitch with two capabilities, under a real systemd), forwarding the
# demo topology, and purged; packages the binaries built above.
FSW_PKG_SKIP_BUILD=1 bash scripts/package_test.sh
# Coverage-guided fuzzing: the switching core, control-socket requests, API bodies.
bash scripts/fuzz.sh 15

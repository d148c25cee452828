#!/usr/bin/env bash
# Installs (once) the real OpenStack Neutron server code and the openstack
# client into a virtualenv and prints the path of the venv's python on stdout;
# everything else goes to stderr. Idempotent and safe to run concurrently
# (flock). Used by scripts/neutron_diff.py, which runs the reference Neutron
# (scripts/neutron_ref/server.py) from this venv and compares Ferroswitch's
# Neutron API against it.
#
#   NEUTRON_REF_VENV     where the virtualenv lives
#                        (default /var/lib/ferroswitch/neutron-ref-venv)
#   NEUTRON_VERSION      neutron version to install (default: pinned below)
#   OSC_VERSION          python-openstackclient version (default: pinned below)
#
# Needs PyPI. Fails loudly (non-zero exit) when it cannot install.
set -euo pipefail

VENV="${NEUTRON_REF_VENV:-/var/lib/ferroswitch/neutron-ref-venv}"
# Pinned so a new release cannot silently change the reference.
NEUTRON_VERSION="${NEUTRON_VERSION:-29.0.0}"
OSC_VERSION="${OSC_VERSION:-10.5.0}"
MARKER="$VENV/.ferroswitch-neutron-ref-$NEUTRON_VERSION-osc-$OSC_VERSION"

log() { echo "neutron-ref.sh: $*" >&2; }

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [[ -f "$MARKER" && -x "$VENV/bin/python" && -x "$VENV/bin/openstack" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

# shellcheck source=lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
fresh_venv "$VENV"
log "installing neutron==$NEUTRON_VERSION, python-openstackclient==$OSC_VERSION from PyPI"
# neutron pulls its whole dependency tree (oslo.*, SQLAlchemy, pecan, ...);
# openstacksdk comes with the client. No upper-constraints file is available
# offline, so pip resolves the newest compatible versions.
"$VENV/bin/pip" install --disable-pip-version-check --no-input -q \
    "neutron==$NEUTRON_VERSION" "python-openstackclient==$OSC_VERSION" >&2
"$VENV/bin/python" -c 'import neutron.wsgi.api' >&2 2>/dev/null || \
    "$VENV/bin/python" -c 'import neutron.server' >&2
"$VENV/bin/openstack" --version >&2
touch "$MARKER"
echo "$VENV/bin/python"

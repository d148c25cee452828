#!/usr/bin/env bash
# Installs (once) the real python-openstackclient into a virtualenv and prints
# the path of its `openstack` binary on stdout; everything else goes to
# stderr. Idempotent and safe to run concurrently (flock). Used by
# control/neutron/tests/neutron/openstack_client.rs to drive the Neutron API with the
# client operators actually use.
#
#   OSC_VENV      where the virtualenv lives (default /var/lib/ferroswitch/osc-venv)
#   OSC_VERSION   python-openstackclient version to install (default: pinned below)
#
# Needs PyPI. Fails loudly (non-zero exit) when it cannot install.
set -euo pipefail

VENV="${OSC_VENV:-/var/lib/ferroswitch/osc-venv}"
# Pinned so a new client release cannot silently change what the test checks.
VERSION="${OSC_VERSION:-10.5.0}"
MARKER="$VENV/.ferroswitch-osc-$VERSION"

log() { echo "openstack-client.sh: $*" >&2; }

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [[ -f "$MARKER" && -x "$VENV/bin/openstack" ]]; then
    echo "$VENV/bin/openstack"
    exit 0
fi

# shellcheck source=lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
fresh_venv "$VENV"
log "installing python-openstackclient==$VERSION from PyPI"
"$VENV/bin/pip" install --disable-pip-version-check --no-input -q "python-openstackclient==$VERSION" >&2
"$VENV/bin/openstack" --version >&2
touch "$MARKER"
echo "$VENV/bin/openstack"

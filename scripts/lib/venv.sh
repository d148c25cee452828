# Sourced by the scripts that install Python tools into a cached virtualenv
# (openstack-client.sh, neutron-ref.sh). Needs log() from the caller.

# Creates an empty virtualenv at $1, replacing whatever is there (a venv
# without its caller's marker is a half-finished install), installing
# Debian's python3-venv first if python3 lacks venv/ensurepip.
fresh_venv() {
    local venv="$1"
    local py="${PYTHON:-python3}"
    command -v "$py" >/dev/null || { log "python3 not found"; return 1; }
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        log "installing python3-venv"
        if command -v apt-get >/dev/null; then
            apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; }
        else
            log "python3 lacks venv/ensurepip and apt-get is not available"
            return 1
        fi
    fi
    rm -rf "$venv"
    log "creating $venv"
    "$py" -m venv "$venv" >&2
}

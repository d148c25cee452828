# Sourced by the scripts that install Debian packages (setup.sh,
# guest-image.sh). Needs die() from the caller.

# Whether Debian package $1 is installed ("install ok installed" is the only
# state accepted).
pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Installs whichever of the packages named after $1 (a tag for messages and
# the log file) are missing, without starting their services; the package
# lists are refreshed only when an install fails. Dies with the log's tail.
ensure_packages() {
    local tag="$1"; shift
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "$tag: installing missing packages: ${missing[*]}" >&2
    command -v apt-get >/dev/null || die "apt-get not found (this script targets Debian 12)"
    local aptlog policy=/usr/sbin/policy-rc.d created_policy=0
    aptlog="$(mktemp "/tmp/fsw-$tag-apt.XXXXXX.log")"
    if [ ! -e "$policy" ]; then
        # Keep maintainer scripts from starting services (openvswitch-switch).
        printf '#!/bin/sh\n# temporary, created by ferroswitch scripts/lib/packages.sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local install=(apt-get install -y -qq --no-install-recommends
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
    local ok=1
    if ! "${install[@]}" >>"$aptlog" 2>&1; then
        { apt-get update -qq && "${install[@]}"; } >>"$aptlog" 2>&1 || ok=0
    fi
    [ "$created_policy" = 1 ] && rm -f "$policy"
    if [ "$ok" = 0 ]; then
        tail -n 30 "$aptlog" >&2
        die "apt-get install ${missing[*]} failed (log: $aptlog)"
    fi
    rm -f "$aptlog"
    for p in "${missing[@]}"; do
        pkg_installed "$p" || die "package $p still not installed"
    done
}

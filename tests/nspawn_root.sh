#!/usr/bin/env bash
# Build (once) a minimal Debian 12 root with systemd that tests boot with systemd-nspawn.
#
#   bash tests/nspawn_root.sh [ROOT]        prints ROOT when it is ready
#
# ROOT defaults to $NODEGUARD_NSPAWN_ROOT, else /var/cache/nodeguard-test/bookworm-systemd.
# The Debian mirror is $NODEGUARD_DEBIAN_MIRROR, else the one this host's apt uses; with
# neither, it fails saying so (no mirror is named here).
# The root is shared by every test that needs a booted systemd (journald, the daemon's
# unit, the packages): boot it with `--volatile=overlay` (tests/nspawn.py does) so it is
# never changed. It holds systemd, dbus and the Python libraries nodeguard's deb depends
# on, so a package installs into it without reaching a mirror.
#
# Idempotent and safe to run concurrently: the build happens under a lock, in a temp folder
# renamed into place when complete, and a stamp names what it contains. A root whose stamp
# differs (the package list changed) is rebuilt.
set -euo pipefail

ROOT="${1:-${NODEGUARD_NSPAWN_ROOT:-/var/cache/nodeguard-test/bookworm-systemd}}"
SUITE=bookworm
PKGS=systemd,systemd-sysv,dbus,python3,python3-yaml,python3-psutil,python3-schedule,python3-systemd,python3-prometheus-client,libdeflate0
STAMP="nodeguard-nspawn-root v1 $SUITE $PKGS"

if [ "$(id -u)" -ne 0 ]; then
    echo "nspawn_root.sh: must run as root (debootstrap)" >&2
    exit 2
fi
for tool in debootstrap systemd-nspawn; do
    if ! command -v "$tool" >/dev/null; then
        echo "nspawn_root.sh: $tool is missing: apt-get install debootstrap systemd-container" >&2
        exit 2
    fi
done

ready() { [ -f "$ROOT/.nodeguard-stamp" ] && [ "$(cat "$ROOT/.nodeguard-stamp")" = "$STAMP" ]; }

if ready; then
    echo "$ROOT"
    exit 0
fi

parent="$(dirname "$ROOT")"
mkdir -p "$parent"
chmod 0755 "$parent"
exec 9>"$parent/.$(basename "$ROOT").lock"
flock 9
if ready; then  # another builder finished while we waited
    echo "$ROOT"
    exit 0
fi

mirror="${NODEGUARD_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The mirror this host's own apt uses (deb822 or one-line sources).
    mirror="$( (sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources
        sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list) 2>/dev/null |
        tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -1 || true)"
    if [ -z "$mirror" ]; then
        echo "nspawn_root.sh: no Debian mirror in /etc/apt/sources*; set NODEGUARD_DEBIAN_MIRROR" >&2
        exit 2
    fi
fi

tmp="$(mktemp -d "$parent/.build.XXXXXX")"
trap 'rm -rf --one-file-system "$tmp"' EXIT
log="$tmp.log"
if ! debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$tmp" "$mirror" >"$log" 2>&1; then
    echo "nspawn_root.sh: debootstrap $SUITE from $mirror failed; last lines of $log:" >&2
    tail -20 "$log" >&2
    exit 1
fi
rm -f "$log"
# An empty machine-id: each boot gets a fresh one from nspawn. A persistent journal folder:
# journald writes to /var/log/journal/<machine-id>, which tests read from the host.
: >"$tmp/etc/machine-id"
mkdir -p "$tmp/var/log/journal"
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*
echo "$STAMP" >"$tmp/.nodeguard-stamp"
chmod 0755 "$tmp"
rm -rf --one-file-system "$ROOT"
mv "$tmp" "$ROOT"
trap - EXIT
echo "$ROOT"

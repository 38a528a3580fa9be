#!/usr/bin/env bash
# Build nodeguard's container image from Debian 12 and nodeguard's deb, pulling no base
# image from any registry: debootstrap makes the root, dpkg installs the deb into it,
# and `docker import` turns the tree into an image (docs/fleet.md).
#
#   bash packaging/container/build-image.sh [--cache DIR] DEB [IMAGE]
#
# DEB     nodeguard_<version>_all.deb (`make packages` builds it into dist/)
# IMAGE   repository:tag to create (default nodeguard:<the deb's version>)
# --cache DIR  keep the plain Debian root there and reuse it while its package list is
#              unchanged (the tests share one; debootstrap is the slow part). A cached
#              root misses later Debian updates: build release images without it.
#
# Environment: DOCKER, the docker command (default "docker"; e.g. "docker -H unix://...");
# NODEGUARD_DEBIAN_MIRROR, the Debian mirror (default: the one this host's apt uses).
# Needs root (debootstrap, chroot), debootstrap, dpkg-deb and the docker CLI.
set -euo pipefail

SUITE=bookworm
# Beyond the deb's own Depends: tini as PID 1 (forwards SIGTERM, reaps children).
EXTRA_PKGS=tini
ENTRYPOINT='["/usr/bin/tini", "--", "/usr/local/bin/nodeguard-container"]'
CMD='["--config", "/etc/nodeguard/nodeguard.yaml", "run"]'
METRICS_PORT=9877
# Mount points of the DaemonSet's volumes, present in the image so a read-only root
# filesystem needs no new entry.
MOUNT_DIRS=(/etc/nodeguard/conf.d /var/log/journal /var/lib/docker/containers
    /var/lib/nodeguard /etc/docker)

die() {
    echo "build-image: $*" >&2
    exit 2
}

cache=""
if [ "${1:-}" = "--cache" ]; then
    [ $# -ge 2 ] || die "--cache needs a folder"
    cache="$2"
    shift 2
fi
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build-image.sh [--cache DIR] DEB [IMAGE]"
deb="$(realpath -e "$1")" || die "no such deb: $1"
read -r -a docker <<<"${DOCKER:-docker}"

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap dpkg-deb chroot "${docker[0]}"; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
[ "$(dpkg-deb -f "$deb" Package)" = nodeguard ] || die "$deb is not nodeguard's deb"
version="$(dpkg-deb -f "$deb" Version)"
image="${2:-nodeguard:$version}"

# The deb's Depends, first alternative of each, without versions or arch qualifiers:
# the root gets exactly what the deb needs, so dpkg -i needs no network.
depends_of() {
    dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/([^)]*)//g' \
        -e 's/:any//' -e 's/[[:space:]]//g' | grep -v '^$' | sort -u | paste -sd, -
}
pkgs="$(depends_of "$deb"),$EXTRA_PKGS"

mirror() {
    if [ -n "${NODEGUARD_DEBIAN_MIRROR:-}" ]; then
        echo "$NODEGUARD_DEBIAN_MIRROR"
        return
    fi
    # The mirror this host's apt uses (deb822 .sources or one-line .list files).
    local found
    found="$( (sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources
        sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list) 2>/dev/null |
        tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -1 || true)"
    [ -n "$found" ] || die "no Debian mirror in /etc/apt/sources*: set NODEGUARD_DEBIAN_MIRROR"
    echo "$found"
}

# A plain Debian root with the deb's dependencies, in $1 (from the cache when it has one
# made from the same package list).
debian_root() {
    local dest="$1" stamp="nodeguard-image-root v1 $SUITE $pkgs"
    if [ -n "$cache" ]; then
        mkdir -p "$cache"
        exec 9>"$cache/.lock"
        flock 9  # one builder or reader of the cache at a time
        if [ "$(cat "$cache/.stamp" 2>/dev/null)" = "$stamp" ]; then
            cp -a "$cache/root/." "$dest/"
            exec 9>&-
            return
        fi
    fi
    local log="$work/debootstrap.log" url
    url="$(mirror)" || exit 2
    if ! debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$dest" "$url" \
        >"$log" 2>&1; then
        tail -20 "$log" >&2
        die "debootstrap $SUITE failed (log above)"
    fi
    rm -rf "$dest/var/cache/apt/archives/"*.deb "$dest/var/lib/apt/lists/"*
    if [ -n "$cache" ]; then
        rm -rf --one-file-system "$cache/root" "$cache/.stamp"
        cp -a "$dest" "$cache/root"
        echo "$stamp" >"$cache/.stamp"
        exec 9>&-
    fi
}

install_deb() {
    local root="$1"
    cp "$deb" "$root/tmp/nodeguard.deb"
    # No service may start inside the build root.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    chroot "$root" dpkg -i /tmp/nodeguard.deb >"$work/dpkg.log" 2>&1 ||
        { cat "$work/dpkg.log" >&2; die "dpkg -i of $deb in the image root failed"; }
    rm -f "$root/usr/sbin/policy-rc.d" "$root/tmp/nodeguard.deb"
    chroot "$root" nodeguard --version >/dev/null || die "nodeguard does not run in the root"
}

finish_root() {
    local root="$1" dir
    # The daemon in the foreground, its log lines (stderr outside systemd) on stdout.
    cat >"$root/usr/local/bin/nodeguard-container" <<'EOF'
#!/bin/sh
# nodeguard's container entry point (packaging/container): logs to stdout, no shell left.
exec 2>&1
exec /usr/bin/nodeguard "$@"
EOF
    chmod 0755 "$root/usr/local/bin/nodeguard-container"
    for dir in "${MOUNT_DIRS[@]}"; do
        mkdir -p "$root$dir"
    done
    : >"$root/etc/machine-id"  # the host's is mounted over it
    rm -rf "$root/var/cache/apt/"*.bin "$root/var/log/"*.log "$root/var/log/apt/"* \
        "$root/tmp/"* "$root/root/".bash_history
}

work="$(mktemp -d /tmp/nodeguard-image.XXXXXX)"
trap 'rm -rf --one-file-system "$work"' EXIT
root="$work/root"
mkdir -m 0755 "$root"
debian_root "$root"
install_deb "$root"
finish_root "$root"

tar --numeric-owner --xattrs -C "$root" -c . |
    "${docker[@]}" import \
        --change "ENTRYPOINT $ENTRYPOINT" \
        --change "CMD $CMD" \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV PYTHONUNBUFFERED=1" \
        --change "ENV PYTHONDONTWRITEBYTECODE=1" \
        --change "EXPOSE $METRICS_PORT/tcp" \
        --change "LABEL org.opencontainers.image.title=nodeguard" \
        --change "LABEL org.opencontainers.image.version=$version" \
        --change "LABEL org.opencontainers.image.base.name=debian:$SUITE-debootstrap" \
        --message "nodeguard $version from $(basename "$deb")" \
        - "$image" >/dev/null
echo "$image"

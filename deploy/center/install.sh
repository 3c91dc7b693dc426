#!/usr/bin/env bash
# Installs or upgrades the xueliang county center on this server, in one command:
#
#   sudo deploy/center/install.sh [--root DIR] [--bin PATH]
#
# By default it takes target/release/xl-center (or target/debug/xl-center) of the checkout it
# lives in (`make build` makes it). It installs
#   /usr/bin/xl-center                       the center
#   /usr/sbin/xl-center-backup               deploy/center/backup.sh
#   /usr/sbin/xl-center-restore              deploy/center/restore.sh
#   /etc/systemd/system/xl-center.service    the hardened service (DynamicUser=yes)
#   /etc/xueliang/center.env                 only if absent (0600): the embedded-broker example,
#                                            deploy/center/center.env.embedded
# Running it again upgrades in place; /etc/xueliang/center.env and the data directory
# (/var/lib/xueliang-center) are never touched.
#
# --root DIR installs into DIR instead of / (an image being built, a test): no systemctl call;
# the service is enabled by its multi-user.target.wants link. Without --root:
# systemctl daemon-reload, systemctl enable --now xl-center (and a restart onto a new binary).
set -euo pipefail

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

args="$*"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

root="" bin=""
while (($#)); do
    case $1 in
        --root | --bin)
            { (($# >= 2)) && [[ -n $2 ]]; } || die "$1 needs a value (see --help)"
            [[ $1 == --root ]] && root=$2 || bin=$2
            shift 2
            ;;
        --root=*) root=${1#*=}; shift ;;
        --bin=*) bin=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

if [[ -z $root ]]; then
    ((EUID == 0)) || die "run as root: sudo $0 $args"
else
    mkdir -p "$root" || die "cannot create --root $root"
    root=$(cd "$root" && pwd)
    [[ $root != / ]] || root=""
fi

if [[ -z $bin ]]; then
    if [[ -x $repo/target/release/xl-center ]]; then
        bin=$repo/target/release/xl-center
        say "using the release build $bin"
    elif [[ -x $repo/target/debug/xl-center ]]; then
        bin=$repo/target/debug/xl-center
        say "using the debug build $bin (no release build; \`make build\` makes a faster one)"
    else
        die "no xl-center in $repo/target/release or target/debug: run \`make build\` in $repo, or pass --bin PATH"
    fi
fi
[[ -f $bin && -x $bin ]] || die "--bin $bin is not an executable file"
for f in xl-center.service center.env.embedded backup.sh restore.sh; do
    [[ -f $here/$f ]] || die "$here/$f is missing: run this script from a complete xueliang checkout"
done

own=()
((EUID != 0)) || own=(-o 0 -g 0)
changed=0
pending=""
trap '[[ -z $pending ]] || rm -f -- "$pending"' EXIT

# put SRC DEST MODE: installs SRC as $root/DEST, atomically (a running center keeps its file).
put() {
    local src=$1 dest=$root$2 mode=$3
    if [[ -f $dest && ! -L $dest ]] && cmp -s "$src" "$dest"; then
        chmod "$mode" "$dest"
        ((EUID != 0)) || chown 0:0 "$dest"
        say "$2 unchanged"
        return
    fi
    local verb=installed
    [[ -e $dest ]] && verb=upgraded
    mkdir -p "$(dirname "$dest")"
    pending=$dest.xl-new
    install "${own[@]}" -m "$mode" "$src" "$pending"
    mv -f "$pending" "$dest"
    pending=""
    changed=1
    say "$verb $2"
}

put "$bin" /usr/bin/xl-center 0755
put "$here/backup.sh" /usr/sbin/xl-center-backup 0755
put "$here/restore.sh" /usr/sbin/xl-center-restore 0755
put "$here/xl-center.service" /etc/systemd/system/xl-center.service 0644

env=/etc/xueliang/center.env
if [[ ! -d $root/etc/xueliang ]]; then
    install -d "${own[@]}" -m 0750 "$root/etc/xueliang"
fi
if [[ -e $root$env ]]; then
    say "$env kept as it is"
else
    install "${own[@]}" -m 0600 "$here/center.env.embedded" "$root$env"
    say "wrote $env from center.env.embedded (embedded broker; edit it, or copy center.env.mosquitto over it)"
fi

if [[ -n $root ]]; then
    wants=$root/etc/systemd/system/multi-user.target.wants
    mkdir -p "$wants"
    ln -sfn /etc/systemd/system/xl-center.service "$wants/xl-center.service"
    say "installed into $root: xl-center.service enabled (no systemctl under --root)"
    exit 0
fi

if [[ ! -d /run/systemd/system ]]; then
    systemctl enable xl-center.service 2>&1 | sed 's/^/install: /' || true
    say "systemd is not running here: xl-center starts at the next boot"
    exit 0
fi
was_active=0
systemctl is-active --quiet xl-center.service && was_active=1
systemctl daemon-reload
systemctl enable --now --quiet xl-center.service
if ((was_active && changed)); then
    systemctl try-restart xl-center.service
    say "xl-center restarted on the new files (agents keep their alarms meanwhile)"
fi
if systemctl is-active --quiet xl-center.service; then
    say "xl-center running (journalctl -u xl-center -f to follow it)"
else
    die "xl-center did not start: see journalctl -u xl-center, fix $env, then systemctl restart xl-center"
fi
say "next: xl-center user add LOGIN --role admin --data-dir /var/lib/xueliang-center, then systemctl restart xl-center (see deploy/README.md)"

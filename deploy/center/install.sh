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
#   /usr/lib/xueliang/deploy-lib.sh          deploy/lib.sh, the helpers of those two
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

args="$*"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
messages_as install

root="" bin=""
while (($#)); do
    case $1 in
        --root | --bin)
            need_value "$@"
            [[ $1 == --root ]] && root=$2 || bin=$2
            shift 2
            ;;
        --root=*) root=${1#*=}; shift ;;
        --bin=*) bin=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

resolve_root "$args"
find_binary xl-center "$here/../.."
require_files "$here/xl-center.service" "$here/center.env.embedded" "$here/backup.sh" "$here/restore.sh"

start_puts
trap '[[ -z $pending ]] || rm -f -- "$pending"' EXIT

put "$bin" /usr/bin/xl-center 0755
# The helpers of backup.sh and restore.sh, where the installed copies look for them.
put "$here/../lib.sh" /usr/lib/xueliang/deploy-lib.sh 0644
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
    enable_in_root xl-center
    exit 0
fi

if [[ ! -d /run/systemd/system ]]; then
    enable_for_next_boot xl-center
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

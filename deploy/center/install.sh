#!/usr/bin/env bash
# Installs or upgrades the xueliang county center on this server, in one command:
#
#   sudo deploy/center/install.sh [--root DIR] [--arch ARCH] [--bin PATH] [--host NAME-OR-IP]
#
# It installs for this server's architecture (`uname -m`), x86_64 or aarch64 (--arch ARCH with
# --root: the image of a server of another one). By default it takes that architecture's build
# from the checkout it lives in: target/release/xl-center (or target/debug/xl-center) on x86_64,
# target/cross/aarch64-unknown-linux-gnu/release/xl-center on aarch64 (`make build`,
# `make aarch64`). It installs
#   /usr/bin/xl-center                       the center
#   /usr/sbin/xl-center-backup               deploy/center/backup.sh
#   /usr/sbin/xl-center-restore              deploy/center/restore.sh
#   /usr/lib/xueliang/deploy-lib.sh          deploy/lib.sh, the helpers of those two
#   /etc/systemd/system/xl-center.service    the hardened service (DynamicUser=yes)
#   /etc/xueliang/center.env                 only if absent (0600): deploy/center/center.env.mosquitto
#                                            with the center's broker password filled in
# and the county's broker (Debian's package mosquitto must be installed), every box kept to its
# own topics by the center (deploy/mosquitto/README.md):
#   /etc/mosquitto/conf.d/xueliang.conf      deploy/mosquitto/xueliang.conf
#   /etc/xueliang/tls/                       only if absent: the county CA and a certificate for
#                                            this host (deploy/tls/make-certs.sh), for the
#                                            broker's TLS listener and the API's HTTPS
#   /etc/mosquitto/certs/                    the broker's copy of them
#   /etc/systemd/system/xl-center.service.d/https.conf  hands the certificate to the center
#   /var/lib/mosquitto/dynamic-security.json only if absent: the broker's accounts, the center's
#                                            login (xl-center, a new password) their admin
# --host is the name or address boxes reach this server by (default: hostname -f): the
# certificate is made for it (and localhost, 127.0.0.1), and boxes are told mqtts://HOST:8883.
# Running it again upgrades in place; center.env, the broker's certificates and accounts and the
# data directory (/var/lib/xueliang-center) are never touched. A center.env of an earlier
# install that does not keep the broker's accounts (--broker-accounts) is kept with no Mosquitto
# set up; one whose embedded broker speaks plain MQTT to other machines stops the installer,
# before anything changes, with what to add.
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

root="" arch="" bin="" host=""
while (($#)); do
    case $1 in
        --root | --arch | --bin | --host)
            need_value "$@"
            case $1 in --root) root=$2 ;; --arch) arch=$2 ;; --bin) bin=$2 ;; *) host=$2 ;; esac
            shift 2
            ;;
        --root=*) root=${1#*=}; shift ;;
        --arch=*) arch=${1#*=}; shift ;;
        --bin=*) bin=${1#*=}; shift ;;
        --host=*) host=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

resolve_root "$args"
box_arch "$arch"
find_binary xl-center "$here/../.."
require_files "$here/xl-center.service" "$here/center.env.mosquitto" "$here/backup.sh" "$here/restore.sh" \
    "$here/../mosquitto/xueliang.conf" "$here/../tls/make-certs.sh"
env=/etc/xueliang/center.env
# Settings of an earlier install are kept; those this version would refuse stop it here, before
# anything changes: the embedded broker in plain MQTT beyond loopback.
county_broker=1
if [[ -e $root$env ]] && ! grep -q -- '--broker-accounts' "$root$env"; then
    county_broker=0
    if ! grep -Eq -- '--broker-url|--mqtt-tls-cert|--allow-plain-mqtt|--mqtt-listen 127\.' "$root$env"; then
        die "$env runs the embedded broker in plain MQTT for other machines, which this version refuses (and its --mqtt-listen now defaults to 127.0.0.1:1883): to keep it, add --mqtt-listen 0.0.0.0:1883 --allow-plain-mqtt to XL_CENTER_OPTS (see docs/security.md); better, move to the county's Mosquitto (deploy/mosquitto/README.md, deploy/center/center.env.mosquitto); then run this again"
    fi
fi
if ((county_broker)); then
    multiarch=$arch-linux-gnu
    # mosquitto_ctrl makes the accounts here; the plugin is the box's (an image of another
    # architecture gets it from its own packages).
    command -v mosquitto_ctrl >/dev/null && { [[ $arch != "$(uname -m)" ]] ||
        [[ -f /usr/lib/$multiarch/mosquitto_dynamic_security.so ]]; } ||
        die "Mosquitto is not installed: apt install mosquitto"
fi

start_puts
trap '[[ -z $pending ]] || rm -f -- "$pending"' EXIT

put "$bin" /usr/bin/xl-center 0755
# The helpers of backup.sh and restore.sh, where the installed copies look for them.
put "$here/../lib.sh" /usr/lib/xueliang/deploy-lib.sh 0644
put "$here/backup.sh" /usr/sbin/xl-center-backup 0755
put "$here/restore.sh" /usr/sbin/xl-center-restore 0755
put "$here/xl-center.service" /etc/systemd/system/xl-center.service 0644

if [[ ! -d $root/etc/xueliang ]]; then
    install -d "${own[@]}" -m 0750 "$root/etc/xueliang"
fi

# The county's broker: its settings, its certificates and its accounts, the center their admin.
# Not for a center that already runs with other settings (kept as they are).
broker_password=""
mosquitto_changed=0
if ((county_broker)); then
    conf=$(mktemp)
    sed "s|/usr/lib/x86_64-linux-gnu/|/usr/lib/$multiarch/|" "$here/../mosquitto/xueliang.conf" >"$conf"
    center_changed=$changed changed=0
    put "$conf" /etc/mosquitto/conf.d/xueliang.conf 0644
    rm -f "$conf"
    mosquitto_changed=$changed changed=$center_changed
    [[ -n $host ]] || host=$(hostname -f 2>/dev/null || hostname)
    # One county CA and one certificate for this host: the broker's TLS listener and the API's
    # HTTPS. Made once; the CA's key stays here (0600), to sign more later.
    tls=/etc/xueliang/tls
    if [[ -f $root$tls/server.pem ]]; then
        say "$tls kept as it is"
    else
        "$here/../tls/make-certs.sh" "$root$tls" "$host" >/dev/null
        chmod 0700 "$root$tls"
        say "made the county CA and a certificate for $host in $tls (give boxes ca.pem, as /etc/xueliang/ca.pem)"
        mosquitto_changed=1
    fi
    certs=/etc/mosquitto/certs
    mkdir -p "$root$certs"
    for f in ca.pem server.pem server.key; do
        cmp -s "$root$tls/$f" "$root$certs/$f" || { install -m 0640 "$root$tls/$f" "$root$certs/$f" && mosquitto_changed=1; }
    done
    ! id mosquitto &>/dev/null || ((EUID != 0)) || chown -R mosquitto: "$root$certs"
    # The center's service user cannot read /etc/xueliang/tls: systemd hands it the two files.
    dropin=$(mktemp)
    printf '%s\n' "# Written by deploy/center/install.sh: the API's HTTPS certificate, from $tls." \
        "[Service]" "LoadCredential=server.pem:$tls/server.pem" "LoadCredential=server.key:$tls/server.key" >"$dropin"
    put "$dropin" /etc/systemd/system/xl-center.service.d/https.conf 0644
    rm -f "$dropin"
    accounts=/var/lib/mosquitto/dynamic-security.json
    if [[ -f $root$accounts ]]; then
        say "$accounts kept as it is"
    else
        mkdir -p "$(dirname "$root$accounts")"
        # A center.env that holds the password already (an install stopped half-way) keeps it.
        [[ ! -e $root$env ]] || broker_password=$(sed -n 's/^XL_BROKER_PASSWORD=//p' "$root$env")
        [[ -n $broker_password ]] || broker_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        (umask 077 && mosquitto_ctrl dynsec init "$root$accounts" xl-center "$broker_password" >/dev/null)
        chmod 0600 "$root$accounts"
        ! id mosquitto &>/dev/null || ((EUID != 0)) || chown mosquitto: "$root$accounts"
        say "made the broker's accounts in $accounts: the center's login xl-center is their admin"
        mosquitto_changed=1
    fi
fi

if [[ -e $root$env ]]; then
    say "$env kept as it is"
elif [[ -z $broker_password ]]; then
    die "$env is missing but the broker's accounts exist: copy deploy/center/center.env.mosquitto there and put the center's broker password in it"
else
    (umask 077 && sed -e "s|^XL_BROKER_PASSWORD=.*|XL_BROKER_PASSWORD=$broker_password|" \
        -e "s|mqtts://mqtt.county.example:8883 |mqtts://$host:8883 |" \
        "$here/center.env.mosquitto" >"$root$env")
    chmod 0600 "$root$env"
    ((EUID != 0)) || chown 0:0 "$root$env"
    say "wrote $env from center.env.mosquitto (HTTPS on 8443; boxes are told mqtts://$host:8883)"
fi

if [[ -n $root ]]; then
    enable_in_root xl-center
    exit 0
fi

if [[ ! -d /run/systemd/system ]]; then
    enable_for_next_boot xl-center
    exit 0
fi
if ((mosquitto_changed)); then
    systemctl restart mosquitto.service || die "mosquitto did not start on the new settings: see journalctl -u mosquitto"
    say "mosquitto restarted on the county's settings"
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

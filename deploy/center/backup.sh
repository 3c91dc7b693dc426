#!/usr/bin/env bash
# Backs up the county center's data directory: the alarm store (sled), center.key,
# agent-keys.toml, users.toml and routing.toml; restore.sh puts an archive back.
#
#   backup.sh [--data-dir DIR] [--out DIR] [--keep N]
#   XL_TOKEN=… backup.sh --export-only [--url URL] [--out DIR] [--keep N]
#
# A full backup stops the center for as long as tar takes (seconds for most counties): sled
# lets one process hold the store, and copying its files while the center writes them does
# not give a consistent store. It stops xl-center, archives the data directory to
# OUT/xueliang-center-YYYYmmddTHHMMSSZ.tar.gz, starts the center again, and prints the archive
# and the downtime. Nothing is lost meanwhile: every agent keeps its alarms in its outbox until
# the center, back up, confirms it stored them.
#
#   --data-dir DIR   default: /var/lib/private/xueliang-center (the service's, DynamicUser=yes)
#                    or else /var/lib/xueliang-center, whichever exists
#   --out DIR        where archives go (default /var/backups/xueliang); made 0700
#   --keep N         keep the newest N archives of this kind in --out, delete older ones
#                    (default 14: two weeks of nightly backups; 0 keeps all)
#   --export-only    no downtime: the alarm records (with their timelines; no pictures, users or
#                    keys) as JSON Lines from the running center's GET /api/export, to
#                    OUT/xueliang-center-export-YYYYmmddTHHMMSSZ.jsonl.gz; for an off-site
#                    copy and statistics. Needs an admin's session token in XL_TOKEN
#                    (POST /api/login answers it; see deploy/README.md).
#   --url URL        the center's HTTP address for --export-only (default http://127.0.0.1:8080)
#
# Environment: XL_SYSTEMCTL (default systemctl) is the command that stops and starts the
# center: XL_SYSTEMCTL stop|start|is-active xl-center.service (a test substitutes its own).
set -euo pipefail

# The helpers: deploy/lib.sh in a checkout, else (installed as /usr/sbin/xl-center-backup)
# /usr/lib/xueliang/deploy-lib.sh, which deploy/center/install.sh installs with it.
here=$(dirname "$(readlink -f -- "${BASH_SOURCE[0]}")")
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh" 2>/dev/null || source "$here/../lib/xueliang/deploy-lib.sh"
center_script backup
data_dir="" out=/var/backups/xueliang keep=14 export_only=0 url=http://127.0.0.1:8080
while (($#)); do
    case $1 in
        --data-dir | --out | --keep | --url)
            need_value "$@"
            case $1 in
                --data-dir) data_dir=$2 ;;
                --out) out=$2 ;;
                --keep) keep=$2 ;;
                --url) url=${2%/} ;;
            esac
            shift 2
            ;;
        --export-only) export_only=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $keep =~ ^[0-9]+$ ]] || die "--keep $keep: a number of archives (0: keep all)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out" || die "cannot create --out $out"
chmod 0700 "$out"
umask 077

# A name in $out not taken yet: PREFIX-STAMP[-N]SUFFIX.
fresh_name() {
    local name=$1-$stamp$2 n=1
    while [[ -e $out/$name ]]; do
        n=$((n + 1))
        name=$1-$stamp-$n$2
    done
    printf '%s' "$name"
}

# Keeps the newest $keep files PREFIX-*SUFFIX in $out (by modification time).
rotate() {
    ((keep > 0)) || return 0
    local old
    # shellcheck disable=SC2012 # our own names: no spaces or newlines
    mapfile -t old < <(cd "$out" && ls -1t -- "$1"-*"$2" 2>/dev/null | tail -n +"$((keep + 1))")
    for f in "${old[@]}"; do
        rm -f -- "${out:?}/$f"
        say "deleted old $out/$f (--keep $keep)"
    done
}

size() { du -h -- "$1" | cut -f1; }

partial=""
trap '[[ -z $partial ]] || rm -f -- "$partial"' EXIT

# --- export only: no downtime ----------------------------------------------------------------
if ((export_only)); then
    [[ -n ${XL_TOKEN:-} ]] || die "--export-only needs an admin's session token in XL_TOKEN (see deploy/README.md, Backups)"
    command -v curl >/dev/null || die "curl not found: apt-get install curl"
    name=$(fresh_name xueliang-center-export .jsonl.gz)
    partial=$out/.$name.partial
    headers=$(mktemp)
    trap 'rm -f -- "$headers"; [[ -z $partial ]] || rm -f -- "$partial"' EXIT
    # The token goes through stdin, not the command line (which other users can see).
    printf 'header = "Authorization: Bearer %s"\n' "$XL_TOKEN" |
        curl --config - --silent --show-error --no-buffer --dump-header "$headers" "$url/api/export" |
        gzip >"$partial" ||
        die "the export from $url/api/export broke off (see above); nothing kept"
    status=$(awk 'toupper($1) ~ /^HTTP\// {code = $2} END {print code}' "$headers")
    if [[ $status != 200 ]]; then
        body=$(gzip -dc "$partial" | head -c 300)
        case $status in
            401) die "$url refused XL_TOKEN (401: not a session, or expired after 12 hours): log in again. $body" ;;
            403) die "XL_TOKEN is not an admin's session (403): export needs the admin role. $body" ;;
            *) die "$url/api/export answered ${status:-nothing}: $body" ;;
        esac
    fi
    lines=$(gzip -dc "$partial" | wc -l)
    mv -f -- "$partial" "$out/$name"
    partial=""
    say "exported $lines alarm records from $url to $out/$name ($(size "$out/$name")), center kept running"
    rotate xueliang-center-export .jsonl.gz
    exit 0
fi

# --- full backup: stop, archive, start -----------------------------------------------------------
if [[ -z $data_dir ]]; then
    for d in /var/lib/private/xueliang-center /var/lib/xueliang-center; do
        if [[ -d $d ]]; then
            data_dir=$d
            break
        fi
    done
    [[ -n $data_dir ]] || die "no data directory at /var/lib/private/xueliang-center or /var/lib/xueliang-center: pass --data-dir DIR"
fi
[[ -d $data_dir ]] || die "--data-dir $data_dir is not a directory"
data_dir=$(readlink -f -- "$data_dir")
[[ -f $data_dir/db ]] || die "$data_dir has no alarm store (no file db): is it the center's --data-dir?"
command -v flock >/dev/null || die "flock not found: apt-get install util-linux"

name=$(fresh_name xueliang-center .tar.gz)
partial=$out/.$name.partial
stopped=0 was_running=0
t0=$(date +%s%N)
if "${systemctl[@]}" is-active --quiet "$unit"; then
    say "stopping $unit"
    "${systemctl[@]}" stop "$unit" || die "could not stop $unit (${systemctl[*]} stop $unit)"
    stopped=1 was_running=1
fi
# Whatever happens from here on, the center runs again if it ran before.
start_again() {
    if ((stopped)); then
        stopped=0
        "${systemctl[@]}" start "$unit" || printf 'backup: error: could not start %s again: start it (%s start %s)\n' "$unit" "${systemctl[*]}" "$unit" >&2
    fi
}
trap 'start_again; [[ -z $partial ]] || rm -f -- "$partial"' EXIT

# sled holds an exclusive lock on db while it has the store open: if the lock is free, no
# process writes the store and the copy is consistent.
flock --nonblock --exclusive "$data_dir/db" true ||
    die "a process still holds the store in $data_dir (is $unit running outside ${systemctl[*]}?); no backup made"
tar --create --gzip --numeric-owner --file "$partial" --directory "$data_dir" . ||
    die "tar of $data_dir failed (see above); no backup made"
start_failed=0
if ((stopped)); then
    stopped=0
    "${systemctl[@]}" start "$unit" || start_failed=1
fi
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))

# Checked after the restart, to keep the downtime short.
tar --list --gzip --file "$partial" >/dev/null || die "the archive $partial does not read back; no backup kept"
mv -f -- "$partial" "$out/$name"
partial=""
say "archived $data_dir to $out/$name ($(size "$out/$name"))"
if ((was_running)); then
    printf -v down '%d.%03d s' $((ms / 1000)) $((ms % 1000))
    say "center down $down; agents kept their alarms in their outboxes meanwhile"
else
    say "$unit was not running: no downtime, and it was not started"
fi
rotate xueliang-center .tar.gz
((start_failed == 0)) || die "could not start $unit again (see above): start it now (${systemctl[*]} start $unit)"

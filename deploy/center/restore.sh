#!/usr/bin/env bash
# Restores the county center's data directory from an archive of backup.sh:
#
#   restore.sh ARCHIVE [--data-dir DIR] [--no-start]
#
# It checks the archive reads back, stops xl-center, unpacks the archive beside the data
# directory, moves the old data directory aside to DIR.before-restore-YYYYmmddTHHMMSSZ (delete
# it once the restored center looks right), puts the restored one in its place and starts the
# center (unless --no-start). Alarms that agents sent after the backup was taken are not lost
# if their outboxes still hold them, which they do until the center confirms; alarms the
# center confirmed after the backup are gone from the restored store (restore the newest
# archive).
#
#   --data-dir DIR   default: /var/lib/private/xueliang-center (the service's, DynamicUser=yes)
#                    if it exists, else /var/lib/xueliang-center
#   --no-start       leave the center stopped afterwards
#
# Environment: XL_SYSTEMCTL (default systemctl), as for backup.sh.
set -euo pipefail

# The helpers: deploy/lib.sh in a checkout, else (installed as /usr/sbin/xl-center-restore)
# /usr/lib/xueliang/deploy-lib.sh, which deploy/center/install.sh installs with it.
here=$(dirname "$(readlink -f -- "${BASH_SOURCE[0]}")")
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh" 2>/dev/null || source "$here/../lib/xueliang/deploy-lib.sh"
center_script restore
archive="" data_dir="" start=1
while (($#)); do
    case $1 in
        --data-dir)
            need_value "$@"
            data_dir=$2
            shift 2
            ;;
        --no-start) start=0; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [[ -z $archive ]] || die "one archive at a time ($archive, $1)"
            archive=$1
            shift
            ;;
    esac
done
[[ -n $archive ]] || die "which archive? restore.sh ARCHIVE [--data-dir DIR] (backup.sh makes them, in /var/backups/xueliang by default)"
[[ -f $archive && -r $archive ]] || die "cannot read the archive $archive"
archive=$(readlink -f -- "$archive")

# Check the archive before anything stops.
listing=$(tar --list --gzip --file "$archive" 2>&1) || die "$archive does not read as a .tar.gz: $(head -c 300 <<<"$listing")"
grep -qx './db' <<<"$listing" || die "$archive holds no alarm store (no ./db): not an archive of backup.sh"

if [[ -z $data_dir ]]; then
    data_dir=/var/lib/xueliang-center
    [[ -d /var/lib/private/xueliang-center ]] && data_dir=/var/lib/private/xueliang-center
fi
# The real directory, where the unit's StateDirectory= link points.
data_dir=$(readlink -m -- "$data_dir")
parent=$(dirname "$data_dir")
mkdir -p "$parent"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

stopped=0
if "${systemctl[@]}" is-active --quiet "$unit"; then
    say "stopping $unit"
    "${systemctl[@]}" stop "$unit" || die "could not stop $unit (${systemctl[*]} stop $unit)"
    stopped=1
fi
# On a failure before the swap, the old data is still in place: run the center on it again.
abandon() {
    rm -rf -- "${incoming:-/nonexistent}"
    if ((stopped)); then
        "${systemctl[@]}" start "$unit" && say "$unit started again on the old data directory"
    fi
}
trap abandon EXIT
if [[ -f $data_dir/db ]] && ! flock --nonblock --exclusive "$data_dir/db" true; then
    die "a process still holds the store in $data_dir (is $unit running outside ${systemctl[*]}?); nothing changed"
fi

# Unpacked beside the data directory (same file system), then swapped in by renames.
incoming=$parent/.$(basename "$data_dir").restoring-$stamp
mkdir -m 0700 "$incoming"
tar --extract --gzip --numeric-owner --same-permissions --file "$archive" --directory "$incoming" ||
    die "unpacking $archive failed (see above); the data directory is unchanged"
# The archive's top directory carries the mode and owner the data directory had.
if [[ -e $data_dir ]]; then
    aside=$data_dir.before-restore-$stamp
    mv -- "$data_dir" "$aside"
    say "moved the old data directory aside to $aside"
fi
mv -- "$incoming" "$data_dir"
trap - EXIT
say "restored $archive into $data_dir"

if ((start)); then
    "${systemctl[@]}" start "$unit" || die "could not start $unit (${systemctl[*]} start $unit): see journalctl -u xl-center"
    say "$unit started"
else
    say "$unit left stopped (--no-start): ${systemctl[*]} start $unit"
fi

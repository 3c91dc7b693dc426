# shellcheck shell=bash
# Helpers shared by deploy/agent/install.sh, deploy/center/install.sh, backup.sh and restore.sh;
# sourced, not run. deploy/center/install.sh installs this file as
# /usr/lib/xueliang/deploy-lib.sh, where the installed xl-center-backup and xl-center-restore
# find it (/usr/sbin/../lib/xueliang/). Some functions set variables of the sourcing script
# (root, bin, own, changed, pending, unit, systemctl): their comment says which.

# --- messages and options -------------------------------------------------------------------

# messages_as NAME: say and die prefix their lines with NAME (install, backup, restore).
messages_as() { xl_prog=$1; }

# say MESSAGE: a line of progress on stdout.
say() { printf '%s: %s\n' "$xl_prog" "$*"; }

# die MESSAGE: an error on stderr, then exit 1.
die() { printf '%s: error: %s\n' "$xl_prog" "$*" >&2; exit 1; }

# usage: prints the script's header comment (line 2 up to `set -euo`) as its --help.
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

# need_value "$@": dies unless option $1 is followed by a non-empty value.
need_value() { { (($# >= 2)) && [[ -n $2 ]]; } || die "$1 needs a value (see --help)"; }

# --- installers -----------------------------------------------------------------------------

# resolve_root ARGS: without --root, dies unless root; with it, sets root absolute ("" for /).
resolve_root() {
    if [[ -z $root ]]; then
        ((EUID == 0)) || die "run as root: sudo $0 $1"
    else
        mkdir -p "$root" || die "cannot create --root $root"
        root=$(cd "$root" && pwd)
        [[ $root != / ]] || root=""
    fi
}

# find_binary NAME REPO: sets bin, unless --bin did, to REPO/target/{release,debug}/NAME; checks it.
find_binary() {
    local name=$1 repo
    repo=$(cd "$2" && pwd)
    if [[ -z $bin ]]; then
        if [[ -x $repo/target/release/$name ]]; then
            bin=$repo/target/release/$name
            say "using the release build $bin"
        elif [[ -x $repo/target/debug/$name ]]; then
            bin=$repo/target/debug/$name
            say "using the debug build $bin (no release build; \`make build\` makes a faster one)"
        else
            die "no $name in $repo/target/release or target/debug: run \`make build\` in $repo, or pass --bin PATH"
        fi
    fi
    [[ -f $bin && -x $bin ]] || die "--bin $bin is not an executable file"
}

# require_files PATH...: dies unless each PATH of the checkout is a file.
require_files() {
    local f
    for f in "$@"; do
        [[ -f $f ]] || die "$f is missing: run this script from a complete xueliang checkout"
    done
}

# start_puts: sets own (root owns what we install, when we are root), changed=0 and pending="".
start_puts() {
    own=()
    ((EUID != 0)) || own=(-o 0 -g 0)
    changed=0
    pending=""
}

# put SRC DEST MODE: installs SRC as $root/DEST atomically (sets pending meanwhile, then changed=1).
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
    # shellcheck disable=SC2034 # read by the installers
    changed=1
    say "$verb $2"
}

# enable_in_root NAME: enables NAME.service under --root by the link `systemctl enable` would make.
enable_in_root() {
    local wants=$root/etc/systemd/system/multi-user.target.wants
    mkdir -p "$wants"
    ln -sfn "/etc/systemd/system/$1.service" "$wants/$1.service"
    say "installed into $root: $1.service enabled (no systemctl under --root)"
}

# enable_for_next_boot NAME [NOTE]: enables NAME.service where systemd does not run (NOTE: caveat).
enable_for_next_boot() {
    systemctl enable "$1.service" 2>&1 | sed "s/^/$xl_prog: /" || true
    say "systemd is not running here: $1 starts at the next boot${2:+ $2}"
}

# --- backup and restore ---------------------------------------------------------------------

# center_script NAME: messages_as NAME; sets unit and systemctl=(${XL_SYSTEMCTL:-systemctl}).
center_script() {
    messages_as "$1"
    # shellcheck disable=SC2034 # used by backup.sh and restore.sh
    unit=xl-center.service
    read -r -a systemctl <<<"${XL_SYSTEMCTL:-systemctl}"
    ((${#systemctl[@]})) || systemctl=(systemctl)
}

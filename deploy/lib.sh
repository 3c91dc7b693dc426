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

# --- architectures --------------------------------------------------------------------------

# box_arch ASKED: sets arch to the architecture to install for: ASKED (--arch, for the image of
# another box under --root) or this machine's. Dies unless xueliang runs on it.
box_arch() {
    local here
    here=$(uname -m)
    arch=${1:-$here}
    [[ $arch != arm64 ]] || arch=aarch64
    case $arch in
        x86_64 | aarch64) ;;
        armv6l | armv7l | armv8l | armhf | arm)
            die "$arch (32-bit ARM) is not supported: xueliang runs on x86_64 and aarch64, 64-bit ARM such as RK3568 or RK3588 running a 64-bit system (docs/hardware.md)" ;;
        *) die "$arch is not supported: xueliang runs on x86_64 and aarch64 (docs/hardware.md)" ;;
    esac
    [[ -n $root || $arch == "$here" ]] ||
        die "--arch $arch, but this machine is $here: --arch is for the image of another box, with --root DIR"
}

# elf_arch FILE: prints the architecture FILE's machine code is for: x86_64, aarch64, or what it is.
elf_arch() {
    [[ $(od -An -tx1 -N4 "$1" | tr -d ' \n') == 7f454c46 ]] || { echo "no architecture (not an ELF file)"; return; }
    case $(od -An -tu2 -j18 -N2 "$1" | tr -d ' \n') in
        62) echo x86_64 ;;
        183) echo aarch64 ;;
        *) echo "another architecture (ELF machine $(od -An -tu2 -j18 -N2 "$1" | tr -d ' \n'))" ;;
    esac
}

# require_arch FILE WHAT: dies unless FILE is machine code for $arch (set by box_arch).
require_arch() {
    local got
    got=$(elf_arch "$1")
    [[ $got == "$arch" ]] || die "$2 $1 is for $got, not for $arch: pass the $arch one (make aarch64 builds aarch64 programs; docs/hardware.md)"
}

# find_binary NAME REPO: sets bin, unless --bin did, to REPO's build of NAME for $arch: for
# x86_64 target/{release,debug}/NAME; for aarch64 the cross build (`make aarch64`, or the
# unoptimised one `make test` makes) or a native one. Checks it is for $arch.
find_binary() {
    local name=$1 repo candidate kind cross=target/cross/aarch64-unknown-linux-gnu make=build
    repo=$(cd "$2" && pwd)
    if [[ -z $bin ]]; then
        local candidates=(release:target/release debug:target/debug)
        [[ $arch == x86_64 ]] || make=aarch64 candidates=(release:$cross/release
            release:target/release unoptimised:$cross/emulated debug:target/debug)
        for candidate in "${candidates[@]}"; do
            kind=${candidate%%:*} candidate=$repo/${candidate#*:}/$name
            [[ -x $candidate && $(elf_arch "$candidate") == "$arch" ]] || continue
            bin=$candidate
            break
        done
        [[ -n $bin ]] || die "no $arch build of $name in $repo/target: run \`make $make\` in $repo, or pass --bin PATH"
        if [[ $kind == release ]]; then
            say "using the $arch release build $bin"
        else
            say "using the $arch $kind build $bin (no release build; \`make $make\` makes a faster one)"
        fi
    fi
    [[ -f $bin && -x $bin ]] || die "--bin $bin is not an executable file"
    require_arch "$bin" "--bin"
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

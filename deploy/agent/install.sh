#!/usr/bin/env bash
# Installs or upgrades the xueliang edge agent on this box, in one command:
#
#   sudo deploy/agent/install.sh [--root DIR] [--arch ARCH] [--bin PATH] [--onnxruntime PATH]
#                                [--model PATH] [--agent-id ID]
#
# It installs for this box's architecture (`uname -m`): x86_64 or aarch64; any other it refuses,
# saying so. --arch ARCH (x86_64, aarch64) with --root installs the image of a box of another one.
# By default it takes the artifacts for that architecture from the checkout it lives in:
#   x86_64   target/release/xl-agent (or target/debug/xl-agent) and
#            .cache/onnxruntime/libonnxruntime.so.1.31.1 (`make build` makes them);
#   aarch64  target/cross/aarch64-unknown-linux-gnu/release/xl-agent (or another aarch64 build)
#            and .cache/onnxruntime-aarch64/libonnxruntime.so.1.31.1 (`make aarch64` makes them);
# and .cache/models/nanodet_g416_coco.onnx with its card. A program or library for another
# architecture than the box's is refused.
#
# It installs
#   /usr/bin/xl-agent                                  the agent
#   /usr/lib/xueliang/libonnxruntime.so.1              ONNX Runtime (the agent's default path)
#   /usr/share/xueliang/models/NAME.onnx               the model, its card NAME.card.toml and
#                          NAME.onnx.sha256            its checksum (sha256sum format)
#   /usr/lib/sysusers.d/xueliang.conf                  the system user and group xueliang
#   /usr/lib/tmpfiles.d/xueliang.conf                  /var/lib/xueliang, /etc/xueliang
#   /etc/systemd/system/xl-agent.service               the hardened service
#   /etc/xueliang/agent.toml                           only if absent: a template to enrol
#
# Running it again upgrades in place: the binary, library, model and unit are replaced; the
# config /etc/xueliang/agent.toml and the data directory /var/lib/xueliang (this box's key and
# the outbox of alarms not yet delivered) are never touched.
#
# --root DIR installs into DIR instead of / (an image being built, a test): no systemctl call;
# the service is enabled by its multi-user.target.wants link. Without --root the service is
# enabled, and started (or restarted onto new files) once the box is enrolled and its config
# passes `xl-agent check-config`; until then the installer says how to enrol.
set -euo pipefail

args="$*"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
messages_as install

root="" arch="" bin="" ort="" model="" agent_id=""
while (($#)); do
    case $1 in
        --root | --arch | --bin | --onnxruntime | --model | --agent-id)
            (($# >= 2)) || die "$1 needs a value (see --help)"
            opt=$1 val=$2
            shift 2
            ;;
        --root=* | --arch=* | --bin=* | --onnxruntime=* | --model=* | --agent-id=*)
            opt=${1%%=*} val=${1#*=}
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    [[ -n $val ]] || die "$opt needs a value"
    case $opt in
        --root) root=$val ;;
        --arch) arch=$val ;;
        --bin) bin=$val ;;
        --onnxruntime) ort=$val ;;
        --model) model=$val ;;
        --agent-id) agent_id=$val ;;
    esac
done

resolve_root "$args"
box_arch "$arch"

# --- artifacts ------------------------------------------------------------------------------
find_binary xl-agent "$repo"
if [[ -z $ort ]]; then
    if [[ $arch == x86_64 ]]; then
        ort=$repo/.cache/onnxruntime/libonnxruntime.so.1.31.1 make=setup
    else
        ort=$repo/.cache/onnxruntime-aarch64/libonnxruntime.so.1.31.1 make=aarch64
    fi
    [[ -f $ort ]] || die "no $arch ONNX Runtime library at $ort: run \`make $make\` in $repo, or pass --onnxruntime PATH"
fi
[[ -f $ort ]] || die "no ONNX Runtime library at $ort (--onnxruntime)"
require_arch "$ort" "ONNX Runtime"
model=${model:-$repo/.cache/models/nanodet_g416_coco.onnx}
[[ -f $model ]] || die "no model at $model: run \`make setup\` in $repo, or pass --model PATH"
[[ $model == *.onnx ]] || die "--model $model: the model file must end in .onnx"
card=${model%.onnx}.card.toml
[[ -f $card ]] || die "no model card at $card (the card lies beside the model as NAME.card.toml): run \`make setup\` in $repo"
require_files "$here/xl-agent.service" "$here/agent.toml.template" "$here/sysusers.conf" "$here/tmpfiles.conf"
for tool in systemd-sysusers systemd-tmpfiles sha256sum install; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install systemd coreutils"
done

# The agent's shared libraries and GStreamer plugins (only on the box itself: an image being
# built under --root gets its packages from its own build).
if [[ -z $root ]]; then
    missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ' || true)
    runtime=(libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav)
    absent=()
    if command -v dpkg-query >/dev/null; then
        for p in "${runtime[@]}"; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || absent+=("$p")
        done
    fi
    if [[ -n $missing || ${#absent[@]} -gt 0 ]]; then
        die "xl-agent needs GStreamer${missing:+ (missing libraries: $missing)}: apt-get install ${runtime[*]}"
    fi
fi

# --- files ----------------------------------------------------------------------------------
start_puts
tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; rm -f "${pending:-/nonexistent}"; }
trap cleanup EXIT

name=$(basename "$model")
models=/usr/share/xueliang/models
put "$bin" /usr/bin/xl-agent 0755
put "$ort" /usr/lib/xueliang/libonnxruntime.so.1 0644
put "$model" "$models/$name" 0644
put "$card" "$models/${name%.onnx}.card.toml" 0644
sum=$(sha256sum "$model" | cut -d' ' -f1)
printf '%s  %s\n' "$sum" "$name" >"$tmp/sha256"
put "$tmp/sha256" "$models/$name.sha256" 0644
(cd "$root$models" && sha256sum --quiet -c "$name.sha256") || die "the installed model $root$models/$name does not match its checksum: disk full or failing?"
put "$here/sysusers.conf" /usr/lib/sysusers.d/xueliang.conf 0644
put "$here/tmpfiles.conf" /usr/lib/tmpfiles.d/xueliang.conf 0644
put "$here/xl-agent.service" /etc/systemd/system/xl-agent.service 0644

# --- user, group, directories ---------------------------------------------------------------
mkdir -p "$root/etc"
systemd-sysusers ${root:+--root="$root"} xueliang.conf ||
    die "systemd-sysusers could not create the user xueliang (see above)"
if ! systemd-tmpfiles --create ${root:+--root="$root"} xueliang.conf; then
    ((EUID != 0)) || die "systemd-tmpfiles could not create /var/lib/xueliang and /etc/xueliang (see above)"
    # Not root (--root only): the directories without their owners.
    mkdir -p "$root/var/lib/xueliang" "$root/etc/xueliang"
    chmod 0750 "$root/var/lib/xueliang" "$root/etc/xueliang"
    say "not root: /var/lib/xueliang and /etc/xueliang keep your ownership"
fi
gid=$(awk -F: '$1 == "xueliang" {print $3}' "$root/etc/group")
[[ -n $gid ]] || die "no group xueliang in $root/etc/group after systemd-sysusers"
say "user and group xueliang, /var/lib/xueliang and /etc/xueliang ready"

# --- config ---------------------------------------------------------------------------------
config=/etc/xueliang/agent.toml
if [[ -e $root$config ]]; then
    say "$config kept as it is${agent_id:+ (--agent-id $agent_id ignored)}"
else
    if [[ -z $agent_id ]]; then
        agent_id=$(uname -n)
        agent_id=${agent_id%%.*}
        from="the host name"
    else
        from="--agent-id"
    fi
    [[ $agent_id =~ ^[A-Za-z0-9_-]{1,64}$ && $agent_id != center && $agent_id != dispatch ]] ||
        die "agent id \"$agent_id\" (from $from) must be 1-64 letters, digits, '-' or '_', and not center or dispatch: pass --agent-id ID"
    sed -e "s|@AGENT_ID@|$agent_id|g" -e "s|@MODEL_PATH@|$models/$name|g" "$here/agent.toml.template" >"$tmp/agent.toml"
    cfg_own=()
    ((EUID != 0)) || cfg_own=(-o 0 -g "$gid")
    install "${cfg_own[@]}" -m 0640 "$tmp/agent.toml" "$root$config"
    changed=1
    say "wrote $config for agent $agent_id (from $from): a template until the box is enrolled"
fi

# Enrolment replaces the template's placeholder broker.
enrolled=1
grep -q 'xl-center\.invalid' "$root$config" && enrolled=0
next_enrol() {
    say "next: enrol this box with the county center (county IT gives the URL and a one-time token):"
    say "    xl-agent enroll --center URL --token T --center-key-fingerprint F && systemctl restart xl-agent"
}

# --- service --------------------------------------------------------------------------------
if [[ -n $root ]]; then
    enable_in_root xl-agent
    ((enrolled)) || next_enrol
    exit 0
fi

if [[ ! -d /run/systemd/system ]]; then
    enable_for_next_boot xl-agent "(if its config passes check-config)"
    ((enrolled)) || next_enrol
    exit 0
fi
systemctl daemon-reload
systemctl enable --quiet xl-agent.service
say "xl-agent.service enabled"
if ((!enrolled)); then
    say "xl-agent not started: this box is not enrolled yet ($config has the placeholder broker)"
    next_enrol
elif /usr/bin/xl-agent check-config "$config" >"$tmp/check" 2>&1; then
    if systemctl is-active --quiet xl-agent.service; then
        if ((changed)); then
            systemctl try-restart xl-agent.service
            say "xl-agent restarted on the new files"
        else
            say "xl-agent running, nothing changed"
        fi
    else
        systemctl start xl-agent.service
        say "xl-agent started (journalctl -u xl-agent -f to follow it)"
    fi
else
    sed 's/^/    /' "$tmp/check"
    if systemctl is-active --quiet xl-agent.service; then
        say "xl-agent NOT restarted: $config does not pass check-config (above); the running agent keeps its old files"
    else
        say "xl-agent not started: $config does not pass check-config (above)"
    fi
    die "fix $config (the problems above, each at its line), then: systemctl restart xl-agent"
fi

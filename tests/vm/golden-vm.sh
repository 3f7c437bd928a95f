#!/usr/bin/env bash
# The golden VM, provisioned for real (issue 10): platform/vm/provision-vm
# builds the image (mmdebstrap from this host's Debian mirror, Substrate built
# inside, its registry, the hello service pinned by digest), boots it (TCG
# here), pins the host key from the serial console, reaches SSH and finds hello
# ALIGNED inside; a re-run is a no-op; a boot-only change restarts without a
# rebuild; the guest has no way out; destroy-vm removes it, twice; nothing is
# left (no qemu, no forwarded port, no pidfile, no socket).
# Its own image cache (removed at the end); the downloaded packages are kept
# in $SUBSTRATE_VM_DEBS (default /var/cache/substrate/debs), as apt keeps its own.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "golden VM" "needs root (mmdebstrap --mode=root, mke2fs -d)"; t_done; exit 0; fi
export SUBSTRATE_VM_CACHE=$T/vm-cache
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
PROVISION=$TOP/platform/vm/provision-vm
DESTROY=$TOP/platform/vm/destroy-vm
name=golden-t$$
port=$(t_free_port)
spec=$T/golden.yaml
mkspec() { # cpus
    sed -e "s/^name: .*/name: $name/" -e "s/^cpus: .*/cpus: $1/" -e "s/^memory: .*/memory: 2Gi/" \
        -e "s/^disk: .*/disk: 8Gi/" -e "s/^ssh_port: .*/ssh_port: $port/" "$TOP/platform/vm/golden.yaml" >"$spec"
}
qpid() { cat "$SUBSTRATE_STATE/vm/$name/qemu.pid" 2>/dev/null; }
# a zombie (qemu daemonizes: init reaps it, in its own time) runs nothing and holds nothing
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
t_on_exit "SUBSTRATE_BIN='$BIN' '$DESTROY' --name $name --deadline 20 >/dev/null 2>&1"
mkspec 2
if [ -n "$(git -C "$TOP" status --porcelain 2>/dev/null)" ]; then
    t_skip "golden VM" "the working tree has uncommitted changes: provision-vm builds exact commits only"
    t_done; exit 0
fi

SUBSTRATE_BIN=$BIN "$PROVISION" /nonexistent.yaml >/dev/null 2>"$T/err.txt"; rc=$?
t_eq "a spec that does not exist: exit 2, nothing made" "$rc $(ls "$SUBSTRATE_STATE/vm" 2>/dev/null | wc -l)" "2 0"

start=$SECONDS
SUBSTRATE_BIN=$BIN "$PROVISION" "$spec" --json >"$T/p1.json" 2>"$T/p1.err"; rc=$?
t_diag "cold provision: $((SECONDS - start)) s"
t_eq "cold provision: exit 0, the VM created from an image built now" \
    "$rc $(q "$T/p1.json" 'd["action"], d["built"]')" "0 ('created', True)"
if [ "$rc" != 0 ]; then t_diag "$(tail -n 60 "$T/p1.err")"; t_done; exit 1; fi
t_eq "  progress named its stages with the elapsed time" \
    "$(grep -cE '^provision-vm: \[ *[0-9.]+s\] (root filesystem|disk image|boot|ssh|services)' "$T/p1.err" | awk '{print ($1 >= 5)}')" 1
t_eq "  the hello service inside is ALIGNED" "$(q "$T/p1.json" 'd["services"][0].startswith("hello: ALIGNED hello")')" True
pid1=$(qpid)
t_check "  qemu runs under its recorded pid" test -n "$pid1" -a -d "/proc/$pid1"
kh=$SUBSTRATE_STATE/vm/$name/known_hosts
t_eq "  the host key was pinned from the serial console (one ed25519 key for [127.0.0.1]:$port)" \
    "$(grep -c "^\[127.0.0.1\]:$port ssh-ed25519 " "$kh")" 1
t_eq "  the platform SSH key is 0600" "$(stat -c %a "$SUBSTRATE_STATE/vm/ssh/id_ed25519")" 600
ssh_cmd=$(q "$T/p1.json" 'd["ssh"]')
$ssh_cmd -o BatchMode=yes true </dev/null; rc=$?
t_eq "  the printed ssh command connects, checking the pinned key" "$rc" 0
out=$($ssh_cmd -o BatchMode=yes 'sudo substrate align /etc/substrate/manifests/hello.service.yaml; sudo systemctl is-active substrate.service substrate-registry.service; stat -fc %T /sys/fs/cgroup' </dev/null 2>&1)
t_eq "  inside: align says ALIGNED, the supervisor and registry units run, cgroup v2" \
    "$(echo "$out" | grep -c '^ALIGNED hello') $(echo "$out" | grep -c '^active$') $(echo "$out" | tail -n1)" "1 2 cgroup2fs"
[ "$(echo "$out" | grep -c '^ALIGNED hello')" = 1 ] || t_diag "$out"
# a listener on the host's loopback: without restrict=on the guest would reach it at 10.0.2.2
lport=$(t_free_port)
$PY -m http.server --bind 127.0.0.1 "$lport" >/dev/null 2>&1 &
lpid=$!
t_on_exit "kill $lpid 2>/dev/null"
sleep 1
curl -fsS -o /dev/null "http://127.0.0.1:$lport/"; hrc=$?
out=$($ssh_cmd -o BatchMode=yes "curl -sS --max-time 5 -o /dev/null http://10.0.2.2:$lport/ 2>&1; echo rc=\$?" </dev/null 2>&1)
t_eq "  the guest has no way out (restrict=on): the host listener answers here ($hrc), not from inside" \
    "$hrc $(echo "$out" | grep -c 'rc=0')" "0 0"
t_diag "guest probe: $out"
t_eq "  the guest cannot log in as root with the platform key" \
    "$(ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile="$kh" -i "$SUBSTRATE_STATE/vm/ssh/id_ed25519" -p "$port" root@127.0.0.1 true </dev/null >/dev/null 2>&1; echo $?)" 255

start=$SECONDS
SUBSTRATE_BIN=$BIN "$PROVISION" "$spec" --json >"$T/p2.json" 2>"$T/p2.err"; rc=$?
t_diag "no-op re-run: $((SECONDS - start)) s"
t_eq "re-run, nothing changed: unchanged, nothing built, the same qemu" \
    "$rc $(q "$T/p2.json" 'd["action"], d["built"]') $(qpid)" "0 ('unchanged', False) $pid1"
[ "$rc" = 0 ] || t_diag "$(tail -n 30 "$T/p2.err")"

mkspec 1
start=$SECONDS
SUBSTRATE_BIN=$BIN "$PROVISION" "$spec" --json >"$T/p3.json" 2>"$T/p3.err"; rc=$?
t_diag "restart (cpus 2 -> 1): $((SECONDS - start)) s"
pid2=$(qpid)
t_eq "cpus 2 -> 1: restarted on the cached image, no rebuild, the same image key" \
    "$rc $(q "$T/p3.json" 'd["action"], d["built"], d["image_key"] == sys.argv[3]' "$(q "$T/p1.json" 'd["image_key"]')")" \
    "0 ('restarted', False, True)"
[ "$rc" = 0 ] || t_diag "$(tail -n 30 "$T/p3.err")"
t_eq "  why names the field" "$(q "$T/p3.json" '"cpus 2 -> 1" in d["why"]')" True
t_check "  a new qemu ($pid1 -> $pid2), the old one gone" test -n "$pid2" -a "$pid2" != "$pid1" -a "$(alive "$pid1" && echo y)" = ""
t_eq "  hello is ALIGNED again" "$(q "$T/p3.json" 'd["services"][0].startswith("hello: ALIGNED hello")')" True

SUBSTRATE_BIN=$BIN "$DESTROY" "$spec" >"$T/d1.txt" 2>&1; rc=$?
t_eq "destroy-vm: exit 0, powered off" "$rc $(grep -c 'powered off' "$T/d1.txt")" "0 1"
[ "$rc" = 0 ] || t_diag "$(cat "$T/d1.txt")"
SUBSTRATE_BIN=$BIN "$DESTROY" "$spec" >"$T/d2.txt" 2>&1; rc=$?
t_eq "destroy-vm again: exit 0, nothing to destroy" "$rc $(grep -c 'nothing to destroy' "$T/d2.txt")" "0 1"
$PY - "$port" <<'PY'; prc=$?
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()
PY
t_eq "nothing left: no qemu, the port is free, no run dir (pidfile, QMP socket, overlay)" \
    "$(alive "$pid2" && echo running || echo gone) $prc $([ -e "$SUBSTRATE_STATE/vm/$name" ] && echo left || echo none)" \
    "gone 0 none"
t_done

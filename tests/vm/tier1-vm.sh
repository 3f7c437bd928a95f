#!/usr/bin/env bash
# The Tier-1 integration suite (tests/integration/tier1.sh and tier1-hostile.sh)
# run inside the golden VM, on cgroup v2 and systemd: the host here is a cgroup
# v1 hybrid, so this is where "works on cgroup v2" is shown. The suite runs
# against the VM's own build of Substrate (/opt/substrate/src, cloned at this
# commit), as root, with the VM's registry and runc. Opt-in like
# acceptance-vm.sh: SUBSTRATE_TEST_VM=1 (scripts/test --vm, make check-vm).
. "$(dirname "$0")/../lib.sh"
if [ "${SUBSTRATE_TEST_VM:-0}" != 1 ]; then
    t_skip "tier1 inside the golden VM" "opt-in, tens of minutes on TCG: scripts/test --vm or make check-vm"
    t_done; exit 0
fi
if [ "$(id -u)" != 0 ]; then t_skip "tier1 inside the golden VM" "needs root"; t_done; exit 0; fi
export SUBSTRATE_VM_CACHE=${SUBSTRATE_VM_CACHE:-$T/vm-cache}
name=tier1-t$$
port=$(t_free_port)
sed -e "s/^name: .*/name: $name/" -e "s/^ssh_port: .*/ssh_port: $port/" "$TOP/platform/vm/golden.yaml" >"$T/golden.yaml"
t_on_exit "SUBSTRATE_BIN='$BIN' '$TOP/platform/vm/destroy-vm' --name $name --purge --deadline 30 >/dev/null 2>&1"
"$BIN" provision-vm "$T/golden.yaml" --json >"$T/p.json" 2>"$T/p.err"
rc=$?
t_eq "provision-vm exits 0" "$rc" 0
if [ "$rc" != 0 ]; then t_diag "$(tail -30 "$T/p.err")"; t_done; exit 0; fi
ssh_cmd=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ssh"])' "$T/p.json")
inside() { $ssh_cmd -o BatchMode=yes "$@" </dev/null; }
# under TCG every guest process runs several times slower: the suite's few
# tight deadlines are stretched (SUBSTRATE_TEST_SLOW, tests/integration/tier1.sh)
accel=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accelerator"])' "$T/p.json")
slow=1; [ "$accel" = tcg ] && slow=4
t_diag "accelerator $accel: SUBSTRATE_TEST_SLOW=$slow inside"
t_eq "the VM runs cgroup v2" "$(inside 'stat -fc %T /sys/fs/cgroup' 2>&1)" cgroup2fs

# the inner run's TAP lines become this suite's own, prefixed; its closing
# "N passed, N failed" line and exit code are checked as well
inside "sudo -n bash -c 'cd /opt/substrate/src && git rev-parse HEAD && SUBSTRATE_TEST_SLOW=$slow tests/run integration/tier1'" >"$T/inner.txt" 2>&1
rc=$?
inner_sha=$(head -1 "$T/inner.txt")
t_eq "the VM's Substrate is this commit" "$inner_sha" "$(git -C "$TOP" rev-parse HEAD)"
n=0
while IFS= read -r line; do
    case "$line" in
        "# ---- suite: "*) suite=${line#\# ---- suite: } ;;
        "not ok "*) n=$((n+1)); t_not_ok "vm $suite: $(sed -E 's/^not ok [0-9]+ (- )?//' <<<"$line")" ;;
        "ok "*"# SKIP"*) n=$((n+1)); t_skip "vm $suite: $(sed -E 's/^ok [0-9]+ (- )?//; s/ # SKIP.*//' <<<"$line")" "$(sed 's/.*# SKIP //' <<<"$line")" ;;
        "ok "*) n=$((n+1)); t_ok "vm $suite: $(sed -E 's/^ok [0-9]+ (- )?//' <<<"$line")" ;;
        "1.."*) ;;
        "# "*) echo "$line" ;; # the inner diagnostics, for a failure's why
        *) echo "# vm: $line" ;;
    esac
done <"$T/inner.txt"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$T/inner.txt" | tail -1)
t_diag "inside the VM: $last"
t_eq "tests/run integration/tier1 inside the VM exits 0 with no failure" \
    "$rc $(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"${last:-x passed, x failed}")" "0 0"
t_check "the inner run reported its tests (more than 40)" [ "$n" -gt 40 ]
t_done

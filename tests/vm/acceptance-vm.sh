#!/usr/bin/env bash
# `platform/validate/acceptance --target vm`: the acceptance suite run inside
# the golden VM (provisioned or reused). Opt-in: tens of minutes on TCG (the
# image's first build, then every check nested, Tier-2 jobs at about 67 s a
# boot). Run it with `scripts/test --vm` or `make check-vm`
# (SUBSTRATE_TEST_VM=1); otherwise it reports one skip saying so.
. "$(dirname "$0")/../lib.sh"
if [ "${SUBSTRATE_TEST_VM:-0}" != 1 ]; then
    t_skip "acceptance --target vm" "opt-in, tens of minutes on TCG: scripts/test --vm or make check-vm"
    t_done; exit 0
fi
if [ "$(id -u)" != 0 ]; then t_skip "acceptance --target vm" "needs root"; t_done; exit 0; fi
export SUBSTRATE_VM_CACHE=${SUBSTRATE_VM_CACHE:-$T/vm-cache}
name=accept-t$$
port=$(t_free_port)
sed -e "s/^name: .*/name: $name/" -e "s/^ssh_port: .*/ssh_port: $port/" "$TOP/platform/vm/golden.yaml" >"$T/golden.yaml"
t_on_exit "SUBSTRATE_BIN='$BIN' '$TOP/platform/vm/destroy-vm' --name $name --purge --deadline 30 >/dev/null 2>&1"
# the inner run's TAP lines are this suite's own
SUBSTRATE_BIN=$BIN "$TOP/platform/validate/acceptance" --target vm --spec "$T/golden.yaml" --tap \
    --report "$T/report.json" | grep -v '^1\.\.' | sed -E 's/^(not ok|ok) [0-9]+ (- )?/\1 - /' >"$T/tap.txt"
rc=${PIPESTATUS[0]}
while IFS= read -r line; do
    case "$line" in
        "ok - "*) t_ok "vm: ${line#ok - }" ;;
        "not ok - "*) t_not_ok "vm: ${line#not ok - }" ;;
        *) echo "$line" ;;
    esac
done <"$T/tap.txt"
t_eq "acceptance --target vm exits 0, its report names the target" \
    "$rc $(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["target"], d["failed"])' "$T/report.json" 2>/dev/null)" "0 vm 0"
t_done

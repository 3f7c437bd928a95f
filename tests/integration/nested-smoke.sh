#!/usr/bin/env bash
# platform/validate/nested-smoke (issue 10, point 4): its verdict and reason on
# this machine, within its deadline. PASS only for a hardware-backed boot; on
# hosts without a working KVM it must FAIL and say why (no /dev/kvm here; where
# /dev/kvm exists but boots no guest, the error or the silence). Also the
# no_device and no_permission answers, through --device.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "nested-smoke" "needs root (the VMM's jail)"; t_done; exit 0; fi
if ! [ -x /usr/bin/qemu-system-x86_64 ]; then t_skip "nested-smoke" "qemu-system-x86 is not installed (scripts/install-deps)"; t_done; exit 0; fi
export SUBSTRATE_AGENT=${SUBSTRATE_AGENT:-$(dirname "$BIN")/substrate-agent}
[ -x "$SUBSTRATE_AGENT" ] || SUBSTRATE_AGENT=$TOP/build/substrate-agent
SMOKE=$TOP/platform/validate/nested-smoke
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }

start=$SECONDS
SUBSTRATE_BIN=$BIN timeout 60 "$SMOKE" --json --deadline 20 >"$T/smoke.json"; rc=$?
took=$((SECONDS - start))
t_check "it finishes within its deadline (20 s, plus the kernel's first extraction): ${took}s" test "$took" -le 45
verdict=$(q "$T/smoke.json" 'd["verdict"]')
t_eq "the exit code is the verdict's (0 PASS, 1 FAIL)" "$rc $verdict" "$([ "$verdict" = PASS ] && echo "0 PASS" || echo "1 FAIL")"
t_eq "  with the reason, the qemu and kernel versions, and the time" \
    "$(q "$T/smoke.json" 'len(d["reason"]) > 20, d["accelerator"], bool(d["qemu"]) and d["qemu"] != "unknown", bool(d["kernel"]), d["ms"] >= 0')" \
    "(True, 'kvm', True, True, True)"
if [ ! -e /dev/kvm ]; then
    t_eq "no /dev/kvm on this machine: FAIL, cause no_device, and the reason says so" \
        "$verdict $(q "$T/smoke.json" 'd["cause"], d["reason"].startswith("no /dev/kvm")')" "FAIL ('no_device', True)"
elif [ "$verdict" = FAIL ]; then
    t_eq "/dev/kvm is here but boots no guest: the cause is the failure or the silence, quoted" \
        "$(q "$T/smoke.json" 'd["cause"] in ("qemu_failed", "no_sign_of_life"), "/dev/kvm is there" in d["reason"]')" "(True, True)"
else
    t_eq "a hardware-backed boot: PASS with its boot time" "$(q "$T/smoke.json" 'd["cause"], d["ms"] > 0')" "('booted', True)"
fi
t_eq "  nothing of the boot is left (no job dir, no job process, no job cgroup)" \
    "$(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) $(t_job_pids kvm-probe | wc -l) $(find /sys/fs/cgroup -maxdepth 3 -name 'substrate-job-kvm-probe-*' 2>/dev/null | wc -l)" "0 0 0"

SUBSTRATE_BIN=$BIN "$SMOKE" --device "$T/no-such-kvm" >"$T/nodev.txt"; rc=$?
t_eq "--device that does not exist: FAIL (1), no_device, naming it" \
    "$rc $(grep -c "^nested-smoke: FAIL (no_device): no $T/no-such-kvm: " "$T/nodev.txt")" "1 1"
# root without the capabilities that override file permissions (dropped from the bounding
# set, so the exec'd command never gets them): a mode-000 device cannot be opened
mknod "$T/kvm" c 1 3 && chmod 000 "$T/kvm"
SUBSTRATE_BIN=$BIN setpriv --bounding-set=-dac_override,-dac_read_search "$SMOKE" --device "$T/kvm" >"$T/noperm.txt" 2>&1; rc=$?
t_eq "a device this user cannot open: FAIL (1), no_permission, saying what to do" \
    "$rc $(grep -c 'FAIL (no_permission): .*Permission denied (run as root, or as a member of its group' "$T/noperm.txt")" "1 1"
[ "$rc" = 1 ] || t_diag "$(cat "$T/noperm.txt")"
SUBSTRATE_BIN=$BIN "$SMOKE" --deadline 0 >/dev/null 2>&1; rc=$?
t_eq "--deadline 0: a usage error (2)" "$rc" 2
t_done

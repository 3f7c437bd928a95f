#!/usr/bin/env bash
# Tier-2 under repetition and load: 20 jobs in a row leave nothing behind,
# and 20 boots while two CPU hogs keep both cores busy all finish (0 hangs:
# the guest's TSC rate comes from the host, tsc_early_khz, instead of a PIT
# calibration that fails under load). Runs against the normal build only:
# the sanitizer build adds nothing to the guest and doubles minutes of boots.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "sandbox-stress" "needs root"; t_done; exit 0; fi
if ! [ -x /usr/bin/qemu-system-x86_64 ]; then t_skip "sandbox-stress" "qemu-system-x86 is not installed"; t_done; exit 0; fi
case "$BIN" in *build-asan*) t_skip "sandbox-stress" "runs once, against the normal build (the guest is the same)"; t_done; exit 0 ;; esac

git clone -q "$TOP" "$T/repo"
SHA=$(git -C "$T/repo" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
JOB=$("$BIN" build --repo "$T/repo" job --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}')
[[ $JOB == */job@sha256:* ]] || { echo "Bail out! could not build the job image ($JOB)"; exit 1; }
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$JOB" --key "$T/k1.key" >/dev/null
printf '{"name": "s", "image": "%s", "timeout": 60, "memory_mb": 128, "command": ["/bin/echo", "ok"]}\n' "$JOB" >s.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob s.json --key "$T/k1.key" >/dev/null
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
leftovers() {
    local n=0
    n=$((n + $(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
    n=$((n + $(t_job_pids s | wc -l)))
    n=$((n + $(find /sys/fs/cgroup -maxdepth 3 -name 'substrate-job-s-*' 2>/dev/null | wc -l)))
    echo "$n"
}

good=0
for i in $(seq 1 20); do
    "$BIN" sandbox --json s.json >r.json 2>/dev/null; rc=$?
    [ "$rc $(q r.json 'd["stdout"]["text"].strip()') $(q r.json 'd["teardown"]["residual"]')" = "0 ok 0" ] && good=$((good+1))
done
t_eq "20 jobs in a row: each exit 0, its output, residual 0" "$good" "20"
t_eq "  nothing is left (job dirs, job-uid processes, cgroups)" "$(leftovers)" "0"
t_eq "  20 reports kept" "$(ls "$SUBSTRATE_STATE/tier2/reports/"*.json | wc -l)" "20"

hogs=()
for _ in 1 2; do
    ( while :; do :; done ) &
    hogs+=($!)
done
t_on_exit "kill ${hogs[*]}"
good=0 hung=0 max=0
for i in $(seq 1 20); do
    "$BIN" sandbox --json s.json >r.json 2>/dev/null; rc=$?
    b=$(q r.json 'd["boot_ms"]')
    if [ "$rc" = 0 ] && [ "$(q r.json 'd["teardown"]["residual"]')" = 0 ]; then good=$((good+1)); fi
    [ "$(q r.json 'd["timed_out"]')" = True ] && hung=$((hung+1))
    [[ $b =~ ^[0-9]+$ ]] && [ "$b" -gt "$max" ] && max=$b
done
kill "${hogs[@]}" 2>/dev/null; wait "${hogs[@]}" 2>/dev/null
t_eq "20 boots under two CPU hogs: all completed, 0 hangs" "$good $hung" "20 0"
t_diag "slowest boot under load: $max ms"
t_eq "  nothing is left" "$(leftovers)" "0"
t_done

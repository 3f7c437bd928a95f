#!/usr/bin/env bash
# Tier-1 end to end, with the real registry and the real runc: reconcile ->
# serving, align ALIGNED, a stated no-op, promotion with a client polling
# the published port (no failed request), rollback, a version that is never
# ready (automatic rollback), refused images (unsigned, other key, wrong
# identity) with the old version still serving, tamper -> DRIFT naming the
# file and a re-unpack on the next reconcile, a killed container, a killed
# service supervisor (adoption, refusal window measured), a killed root
# supervisor, on_drift: halt, logs on disk and capped, stop leaving nothing
# behind, the systemd unit, and the runtime config against the schema.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
# SUBSTRATE_TEST_SLOW=N stretches the few deadlines this test sets tight (an
# exec probe's timeout and deadline, the refusal window's bound) N times: a
# guest under TCG emulation (tests/vm/tier1-vm.sh) runs every process several
# times slower. What is checked does not change, only how long it may take.
SLOW=${SUBSTRATE_TEST_SLOW:-1}
case $SLOW in [1-9]|[1-9][0-9]) ;; *) echo "Bail out! SUBSTRATE_TEST_SLOW must be 1..99, not $SLOW"; exit 1 ;; esac
if [ "$(id -u)" != 0 ]; then t_skip "tier1" "needs root (runc, cgroups, namespaces)"; t_done; exit 0; fi
if ! command -v runc >/dev/null; then t_skip "tier1" "runc is not installed (scripts/install-deps)"; t_done; exit 0; fi

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
export SUBSTRATE_SERVICE_LOG_MAX=4096
S1=$T/s1
cleanup_tier1() {
    for m in "$T"/*.yaml; do [ -e "$m" ] && "$BIN" stop "$m" >/dev/null 2>&1; done
    "$BIN" supervise --stop >/dev/null 2>&1
    for p in $(cat "$SUBSTRATE_STATE"/tier1/services/*/state.json 2>/dev/null | sed -n 's/.*"supervisor_pid": \([0-9]*\).*/\1/p'); do
        [ -d /proc/$p ] && grep -q supervise /proc/$p/cmdline 2>/dev/null && kill -9 "$p" 2>/dev/null
    done
    return 0
}
t_on_exit cleanup_tier1

build() { "$BIN" build --repo "$R" hello --version "$1" --rev "$SHA" -q | awk '{print $NF}'; }
V1=$(build 1.0.0); V1=${V1#*@}
V2=$(build 2.0.0); V2=${V2#*@}
if [[ $V1 != sha256:* || $V2 != sha256:* ]]; then echo "Bail out! could not build hello ($V1, $V2)"; exit 1; fi
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k2" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
sign() { SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/hello@$1" --key "$T/$2.key" >/dev/null; }
sign "$V1" k1; sign "$V2" k1

# a version that never gets ready: hello listening on another port
"$BIN" pull -q "$REG/hello@$V1" --oci "$T/lay:bad" >/dev/null
umoci config --image "$T/lay:bad" --config.cmd=--listen --config.cmd=0.0.0.0:9999 >/dev/null 2>&1
VB=$("$BIN" push -q --oci "$T/lay:bad" "$REG/hello:bad" | awk '{print $NF}'); VB=${VB#*@}
sign "$VB" k1
# unsigned (another version), and one signed by a key we do not trust
"$BIN" pull -q "$REG/hello@$V1" --oci "$T/lay:u" >/dev/null
umoci config --image "$T/lay:u" --config.label=dev.substrate.test=unsigned >/dev/null 2>&1
VU=$("$BIN" push -q --oci "$T/lay:u" "$REG/hello:unsigned" | awk '{print $NF}'); VU=${VU#*@}
umoci config --image "$T/lay:u" --config.label=dev.substrate.test=otherkey >/dev/null 2>&1
VK=$("$BIN" push -q --oci "$T/lay:u" "$REG/hello:otherkey" | awk '{print $NF}'); VK=${VK#*@}
sign "$VK" k2
for d in "$VB" "$VU" "$VK"; do [[ $d == sha256:* ]] || { echo "Bail out! test images ($VB $VU $VK)"; exit 1; }; done

# t_false DESC CMD...: passes when CMD fails
t_false() { local d=$1; shift; if "$@" >/dev/null 2>&1; then t_not_ok "$d"; t_diag "succeeded: $*"; else t_ok "$d"; fi; }
P=$(t_free_port)
manifest() { # manifest FILE DIGEST [extra yaml lines...]
    local f=$1 d=$2; shift 2
    {
        echo "name: hello-t"
        echo "image: $REG/hello@$d"
        echo "ports: [\"127.0.0.1:$P:8080\"]"
        echo "health: {http: \"http://127.0.0.1:8080/healthz\", interval: 500ms, timeout: 1s, failure_threshold: 3}"
        echo "readiness: {http: \"http://127.0.0.1:8080/readyz\", interval: 100ms, deadline: 8s}"
        echo "stop_grace: 3s"
        echo "backoff: {initial: 200ms, max: 2s}"
        echo "resources: {memory: 64Mi, pids: 64, cpu: 0.5}"
        for l in "$@"; do echo "$l"; done
    } >"$f"
}
M=$T/hello.yaml
manifest "$M" "$V1"
get() { curl -s --noproxy '*' -m 5 "http://127.0.0.1:$P$1"; }
code() { curl -s --noproxy '*' -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P$1"; }
state() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$SUBSTRATE_STATE/tier1/services/hello-t/state.json" "$1" 2>/dev/null; }
poll_start() { rm -f "$T/stop-poll"; $PY "$TOP/tests/tools/poller.py" "$P" "$T/stop-poll" >"$T/poll.json" & POLLER=$!; sleep 0.3; }
poll_stop() { touch "$T/stop-poll"; wait "$POLLER"; }
pj() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/poll.json" "$1"; }
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
    local end=$((SECONDS + $1)); shift
    while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.1; done; return 1
}

# ---- reconcile -> serving ----
t_check "reconcile hello: exit 0" "$BIN" reconcile -q "$M"
t_eq "/ answers on the published port with version 1.0.0" "$(get / | grep -o 'substrate 1.0.0')" "substrate 1.0.0"
t_eq "/healthz answers 200" "$(code /healthz)" 200
t_check "align: ALIGNED (exit 0)" "$BIN" align "$M"
"$BIN" align "$M" --json >"$T/align.json"
t_eq "align --json: verdict, digests, key and checks" \
    "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["verdict"], d["manifest_digest"]==d["running_digest"]==sys.argv[2], [c["check"]+"="+c["result"] for c in d["checks"]], d["key_id"]==sys.argv[3])' "$T/align.json" "$V1" "$("$BIN" key id "$T/k1.pub")")" \
    "ALIGNED True ['digest=pass', 'process=pass', 'signature=pass'] True"
out=$("$BIN" reconcile -q "$M")
t_eq "a second reconcile is a stated no-op" "$(echo "$out" | grep -c ': unchanged: ')" 1
cfg=$(ls -d "$SUBSTRATE_STATE"/tier1/services/hello-t/gen-*/config.json | head -1)
t_check "the generated runtime config validates against the OCI runtime-spec schema" \
    "$TOP/tests/tools/oci-schema-check" runtime-config "$cfg"
PID1=$(state 'd["current"]["pid"]')

# ---- promotion with a client polling ----
manifest "$M" "$V2"
poll_start
t_check "promotion to version 2: exit 0" "$BIN" reconcile -q "$M"
sleep 0.5; poll_stop
t_eq "no failed request during the promotion ($(cat "$T/poll.json"))" "$(pj 'd["failed"]')" 0
t_eq "both versions answered during it" "$(pj 'sum(1 for b in d["bodies"] if "substrate 1.0.0" in b)>0 and sum(1 for b in d["bodies"] if "substrate 2.0.0" in b)>0')" True
t_eq "/ now says 2.0.0" "$(get / | grep -o 'substrate 2.0.0')" "substrate 2.0.0"
t_false "the old container's process is gone" test -d "/proc/$PID1"
t_check "align on the new digest: ALIGNED" "$BIN" align "$M"

# ---- rollback = the old digest again ----
manifest "$M" "$V1"
poll_start
t_check "rollback to version 1: exit 0" "$BIN" reconcile -q "$M"
poll_stop
t_eq "no failed request during the rollback" "$(pj 'd["failed"]')" 0
t_eq "/ says 1.0.0 again" "$(get / | grep -o 'substrate 1.0.0')" "substrate 1.0.0"
t_check "align: ALIGNED after the rollback" "$BIN" align "$M"

# ---- a version that never gets ready ----
manifest "$T/bad.yaml" "$VB"
out=$("$BIN" reconcile -q "$T/bad.yaml" 2>&1); rc=$?
t_eq "never-ready version: exit 1" "$rc" 1
t_eq "it names the failure (not ready) and the rollback" "$(echo "$out" | grep -c 'not ready within')$(echo "$out" | grep -c 'rolled back')" 11
t_eq "the old version still serves" "$(get / | grep -o 'substrate 1.0.0')" "substrate 1.0.0"
t_check "align of the old manifest: still ALIGNED" "$BIN" align "$M"

# ---- refused images: nothing changes ----
refused() { # refused WHAT YAML REASON
    local out rc
    out=$("$BIN" reconcile -q "$2" --json 2>/dev/null); rc=$?
    t_eq "$1: refused (exit 1, reason $3)" "$rc $(echo "$out" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("reason"))' 2>/dev/null)" "1 $3"
    t_eq "$1: the old version still serves" "$(get / | grep -o 'substrate 1.0.0')" "substrate 1.0.0"
}
manifest "$T/u.yaml" "$VU"; refused "unsigned image" "$T/u.yaml" no_signature
manifest "$T/k.yaml" "$VK"; refused "image signed by another key" "$T/k.yaml" no_trusted_key
manifest "$T/i.yaml" "$V2" "identity: $REG/somebody-else"; refused "wrong identity" "$T/i.yaml" identity_mismatch
t_check "align: still ALIGNED after the refusals" "$BIN" align "$M"

# ---- tamper -> DRIFT (deep), re-unpack on the next reconcile ----
ROOTFS=$(state 'd["current"]["rootfs"]')
case $ROOTFS in "$SUBSTRATE_STATE"/tier1/rootfs/*/rootfs) ;; *) echo "Bail out! no rootfs on record ($ROOTFS)"; exit 1;; esac
chmod 4755 "$ROOTFS/usr/bin/hello" # (its content cannot change while it runs: ETXTBSY)
out=$("$BIN" align "$M" --deep); rc=$?
t_eq "align --deep after a tamper: DRIFT (exit 1)" "$rc" 1
t_eq "it names the changed file" "$(echo "$out" | grep -c 'usr/bin/hello changed')" 1
touch "$ROOTFS/added-file"
t_eq "an added file is named too" "$("$BIN" align "$M" --deep | grep -c 'added-file added')" 1
t_check "the shallow align does not read the rootfs (still ALIGNED)" "$BIN" align "$M"
t_check "reconcile the same digest: exit 0" "$BIN" reconcile -q "$M"
t_check "the tampered entry was unpacked again: align --deep ALIGNED" "$BIN" align "$M" --deep
t_false "the added file is gone" test -e "$(state 'd["current"]["rootfs"]')/added-file"

# ---- the container process killed -> restarted ----
CP=$(state 'd["current"]["pid"]')
kill -9 "$CP"
restarted() { local p; p=$(state 'd["current"]["pid"]'); [ -n "$p" ] && [ "$p" != "$CP" ] && [ "$(state 'd["status"]')" = running ] && [ "$(code /healthz)" = 200 ]; }
t_check "a killed container is restarted by its supervisor" wait_for 15 restarted
t_eq "the restart is counted" "$(state 'd["restarts"]>=1')" True

# ---- the service supervisor killed -> restarted, container adopted ----
CP=$(state 'd["current"]["pid"]')
SP=$(state 'd["supervisor_pid"]')
poll_start
kill -9 "$SP"
newsup() { local p; p=$(state 'd["supervisor_pid"]'); [ -n "$p" ] && [ "$p" != "$SP" ] && [ "$(code /healthz)" = 200 ]; }
t_check "a killed service supervisor is restarted by the root" wait_for 15 newsup
sleep 0.3; poll_stop
t_eq "it adopted the running container (same pid)" "$(state 'd["current"]["pid"]')" "$CP"
t_diag "refusal window while the service supervisor restarted: $(pj 'd["max_fail_window_ms"]') ms ($(pj 'd["failed"]') of $(pj 'd["total"]') requests failed: $(pj 'd["kinds"]'))"
t_eq "the refusal window stays under $((5 * SLOW)) s" "$(pj "d['max_fail_window_ms'] < 5000 * $SLOW")" True

# ---- the root supervisor killed -> services keep answering ----
RP=$(cat "$SUBSTRATE_STATE/tier1/root.pid")
kill -9 "$RP"
sleep 0.5
t_eq "with the root gone the service still answers" "$(code /healthz)" 200
t_check "the next reconcile recovers (exit 0)" "$BIN" reconcile -q "$M"
t_check "a root supervisor runs again" wait_for 5 bash -c "[ \"\$(cat '$SUBSTRATE_STATE/tier1/root.pid')\" != $RP ]"

# ---- status ----
t_eq "status --json: running, supervisors alive" \
    "$("$BIN" status hello-t --json | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["supervisor"], d["root_supervisor"], d["container_alive"])')" \
    "running True True True"

# ---- logs on disk, capped ----
for i in $(seq 1 150); do get /healthz >/dev/null; done
sleep 1.5
L=$SUBSTRATE_STATE/tier1/services/hello-t/logs
t_check "logs: the service's output is on disk" grep -q 'GET /healthz' "$L/current" "$L/current.1"
big=$(find "$L" -type f -size +32k | wc -l)
t_eq "logs: every file is capped (rotated past 4 KiB, checked 4 times a second)" "$big" 0
t_check "logs: rotated files exist" test -e "$L/current.1"
t_eq "substrate logs prints them" "$("$BIN" logs hello-t | grep -c 'GET /healthz' | awk '{print ($1>0)}')" 1
"$BIN" logs hello-t --follow >"$T/follow.out" 2>&1 &
FOLLOW=$!
t_on_exit "kill $FOLLOW"
sleep 0.5
get /healthz?followed >/dev/null
followed() { grep -q 'GET /healthz?followed' "$T/follow.out"; }
t_check "logs --follow prints what the service writes next" wait_for 5 followed
kill "$FOLLOW"; wait "$FOLLOW" 2>/dev/null

# ---- on_drift: halt ----
manifest "$M" "$V1" "on_drift: halt"
t_check "reconcile with on_drift: halt" "$BIN" reconcile -q "$M"
ROOTFS=$(state 'd["current"]["rootfs"]')
case $ROOTFS in "$SUBSTRATE_STATE"/tier1/rootfs/*/rootfs) ;; *) echo "Bail out! no rootfs on record ($ROOTFS)"; exit 1;; esac
chmod 0700 "$ROOTFS/usr/bin/hello"
t_false "align --deep: DRIFT" "$BIN" align "$M" --deep
t_eq "on_drift: halt stopped the service" "$(state 'd["status"]')" halted
t_eq "the port no longer answers" "$(code /healthz)" 000
out=$("$BIN" align "$M"); rc=$?
t_eq "a halted service aligns as DRIFT (not running)" "$rc $(echo "$out" | grep -c 'not running')" "1 1"
t_check "reconcile brings it back" "$BIN" reconcile -q "$M"
t_eq "serving again" "$(code /healthz)" 200

# ---- a failing health probe restarts the container ----
sed -i 's|/healthz", interval: 500ms|/no-such-path", interval: 200ms|' "$M"
t_check "reconcile with a health probe that fails (404)" "$BIN" reconcile -q "$M"
R0=$(state 'd["restarts"]')
unhealthy() { [ "$(state 'd["restarts"]')" -gt "$R0" ] && state 'd["last_error"]' | grep -q 'health probe failed'; }
t_check "the supervisor restarts it after failure_threshold failures" wait_for 15 unhealthy
manifest "$M" "$V1"
t_check "reconcile with the good probe again" "$BIN" reconcile -q "$M"

# ---- an exec readiness probe: run in the container by the runtime ----
sed 's|^readiness: .*|readiness: {exec: ["/usr/bin/hello", "--version"], interval: 100ms, timeout: '"$SLOW"'s, deadline: '"$((8 * SLOW))"'s}|' "$M" >"$T/exec.yaml"
t_check "reconcile with an exec readiness probe (runc exec)" "$BIN" reconcile -q "$T/exec.yaml"
t_eq "it serves" "$(code /healthz)" 200
sed 's|^readiness: .*|readiness: {exec: ["/usr/bin/hello", "--no-such-flag"], interval: 100ms, timeout: '"$SLOW"'s, deadline: '"$((2 * SLOW))"'s}|' "$M" >"$T/exec-bad.yaml"
out=$("$BIN" reconcile -q "$T/exec-bad.yaml" 2>&1); rc=$?
t_eq "an exec probe that fails: not ready, exit 1, rolled back" "$rc $(echo "$out" | grep -c 'exit status 2')" "1 1"
t_check "back to the http probes" "$BIN" reconcile -q "$M"

# ---- the registry unreachable: the last verification stands in, for a while ----
"$BIN" registry stop >/dev/null
out=$("$BIN" align "$M"); rc=$?
t_eq "registry down, a recent verification on record: ALIGNED, its age printed" \
    "$rc $(echo "$out" | grep -c 'registry unreachable.*last verified [0-9]* s ago')" "0 1"
manifest "$T/stale.yaml" "$V1" "verify_max_age: 1s"
sleep 1.5
out=$("$BIN" align "$T/stale.yaml"); rc=$?
t_eq "past verify_max_age: cannot decide (exit 3, UNDECIDED), never ALIGNED" "$rc $(echo "$out" | grep -c '^UNDECIDED')" "3 1"
"$BIN" registry start >/dev/null
t_check "the registry back: ALIGNED" "$BIN" align "$M"

# ---- the supervisor aligns on its own (deep_align_interval) and halts ----
manifest "$M" "$V1" "on_drift: halt" "deep_align_interval: 1s"
t_check "reconcile with deep_align_interval: 1s" "$BIN" reconcile -q "$M"
ROOTFS=$(state 'd["current"]["rootfs"]')
case $ROOTFS in "$SUBSTRATE_STATE"/tier1/rootfs/*/rootfs) ;; *) echo "Bail out! no rootfs on record ($ROOTFS)"; exit 1;; esac
chmod 0711 "$ROOTFS/usr/bin/hello"
halted() { [ "$(state 'd["status"]')" = halted ]; }
t_check "the supervisor's own deep align found the DRIFT and halted the service" wait_for 10 halted
t_eq "its last align is recorded as DRIFT" "$(state 'd["last_align"]["result"]')" DRIFT
manifest "$M" "$V1"
t_check "reconcile brings it back again" "$BIN" reconcile -q "$M"

# ---- a host reboot: everything killed, supervise --boot brings it back ----
CP=$(state 'd["current"]["pid"]')
SP=$(state 'd["supervisor_pid"]')
RP=$(cat "$SUBSTRATE_STATE/tier1/root.pid")
kill -9 "$RP" "$SP"
runc --root "$SUBSTRATE_STATE/tier1/runc" kill "$(state 'd["current"]["container_id"]')" KILL
t_check "after the 'reboot' nothing answers" wait_for 5 bash -c "[ \"\$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:$P/healthz)\" = 000 ]"
"$BIN" supervise --boot >>"$T/boot.log" 2>&1 &
BOOT=$!
t_on_exit "kill $BOOT"
booted() { local p; p=$(state 'd["current"]["pid"]'); [ -n "$p" ] && [ "$p" != "$CP" ] && [ "$(code /healthz)" = 200 ]; }
t_check "supervise --boot brings the service back" wait_for 20 booted
t_check "ALIGNED after the boot" "$BIN" align "$M"

# ---- stop: nothing of the service remains ----
CP=$(state 'd["current"]["pid"]')
CID=$(state 'd["current"]["container_id"]')
CG=$(state 'd["current"]["cgroup"]')
SP=$(state 'd["supervisor_pid"]')
NS=$(readlink "/proc/$CP/ns/net")
t_check "stop: exit 0" "$BIN" stop "$M"
t_eq "stop again: idempotent" "$("$BIN" stop hello-t)" "hello-t: already stopped"
t_false "no container process" test -d "/proc/$CP"
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
t_check "no supervisor process" wait_for 3 gone "$SP"
t_eq "no cgroup left (${CG:-none on record})" "$([ -n "$CG" ] && ls -d /sys/fs/cgroup/*"$CG" 2>/dev/null | wc -l)" 0
empty_parents() { local d; for d in /sys/fs/cgroup/*/substrate; do
    [ -d "$d" ] && [ -z "$(find "$d" -mindepth 1 -maxdepth 1 -type d)" ] && echo "$d"; done | wc -l; }
t_eq "no empty parent cgroup /substrate left behind" "$(empty_parents)" 0
t_eq "no mount of the bundle left" "$(grep -c "$SUBSTRATE_STATE/tier1" /proc/self/mountinfo)" 0
t_eq "no process in its network namespace" "$(for p in /proc/[0-9]*; do readlink "$p/ns/net" 2>/dev/null; done | grep -c "^$NS$")" 0
t_false "no runtime state" runc --root "$SUBSTRATE_STATE/tier1/runc" state "$CID"
t_eq "the published port is closed" "$(code /healthz)" 000
t_eq "align after stop: DRIFT, not running" "$("$BIN" align "$M" | grep -c 'not running')" 1
t_check "reconcile after a stop: exit 0" "$BIN" reconcile -q "$M"
t_eq "it answers on its published port again" "$(code /healthz)" 200
t_check "stop it again" "$BIN" stop "$M"

# ---- the systemd unit ----
"$BIN" reconcile --render systemd --bin "$BIN" >"$T/substrate-tier1.service"
t_check "the rendered unit passes systemd-analyze verify" systemd-analyze verify "$T/substrate-tier1.service"
t_eq "it delegates the cgroup and runs supervise --boot" \
    "$(grep -c '^Delegate=yes$' "$T/substrate-tier1.service")$(grep -c "^ExecStart=$BIN supervise --boot$" "$T/substrate-tier1.service")" 11

# ---- runtimes ----
if command -v runsc >/dev/null; then
    PG=$(t_free_port)
    G=$T/gvisor.yaml
    printf 'name: hello-gvisor\nimage: %s/hello@%s\nruntime: runsc\nports: ["127.0.0.1:%s:8080"]\nreadiness: {http: "http://127.0.0.1:8080/readyz", interval: 100ms, deadline: 20s}\nstop_grace: 2s\n' \
        "$REG" "$V1" "$PG" >"$G"
    t_check "hello under runsc (gVisor, ptrace): reconcile" "$BIN" reconcile -q "$G"
    t_eq "it serves on its published port" "$(curl -s --noproxy '*' -m 5 "http://127.0.0.1:$PG/" | grep -o 'substrate 1.0.0')" "substrate 1.0.0"
    t_check "align: ALIGNED (the runtime's record as the process evidence)" "$BIN" align "$G"
    GS=$SUBSTRATE_STATE/tier1/services/hello-gvisor/state.json
    GCG=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["current"]["cgroup"])' "$GS")
    t_check "stop" "$BIN" stop "$G"
    t_eq "no gVisor process of it is left" "$(ps -eo args | grep -c "[r]unsc-.*$SUBSTRATE_STATE/tier1/runsc")" 0
    t_eq "no cgroup of it is left (runsc leaves them: the supervisor removes them)" "$([ -n "$GCG" ] && ls -d /sys/fs/cgroup/*"$GCG" 2>/dev/null | wc -l)" 0
else
    t_skip "hello under runsc" "runsc is not installed (scripts/install-deps installs it)"
fi
if [ -d /sys/fs/cgroup/unified ] && [ -d /sys/fs/cgroup/memory ]; then
    manifest "$T/crun.yaml" "$V1" "runtime: crun"
    out=$("$BIN" reconcile -q "$T/crun.yaml" 2>&1); rc=$?
    t_eq "runtime: crun on this hybrid-cgroup host: refused with the reason (exit 3)" "$rc $(echo "$out" | grep -c 'hybrid')" "3 1"
else
    t_skip "runtime: crun refused on a hybrid-cgroup host" "this host is not hybrid"
fi

# ---- usage errors ----
out=$("$BIN" reconcile -q "$TOP/platform/manifests/hello.service.yaml" 2>&1); rc=$?
t_eq "the reference manifest's placeholder digest: exit 2, says what to pin" "$rc $(echo "$out" | grep -c 'placeholder.*build-sign-push')" "2 1"
out=$("$BIN" align "$T/nope.yaml" 2>&1); rc=$?
t_eq "align of a missing manifest: exit 2" "$rc" 2
manifest "$T/never.yaml" "$V1"; sed -i 's/^name: hello-t/name: never-reconciled/' "$T/never.yaml"
out=$("$BIN" align "$T/never.yaml" 2>&1); rc=$?
t_eq "align of a service never reconciled: exit 2, says so" "$rc $(echo "$out" | grep -c 'never reconciled')" "2 1"
t_done

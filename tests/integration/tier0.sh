#!/usr/bin/env bash
# Tier-0 end to end, with the real registry: a signed jobspec with "tier": 0
# runs the signed `job` image as a plain process (namespaces, cgroup, a job
# uid, no capabilities) through the same runner and report as Tier-2. The
# job sees only its declared env (a variable exported in the runner's
# environment is not visible); its stdout and stderr are on disk under
# $SUBSTRATE_STATE/logs/; a `sleep 1000` with timeout 2 ends in 124 with its
# processes and cgroup gone and residual 0; a probe to a port a host listener
# holds on 127.0.0.1 is blocked (the job's netns has only its own lo) and
# recorded; egress.allow, "user" and secret-like env are refused, and so is
# an unsigned tier-0 jobspec.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "tier0" "needs root (namespaces, cgroups, a uid per job)"; t_done; exit 0; fi
if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
    t_skip "tier0" "no overlay filesystem in this kernel"; t_done; exit 0
fi

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
export SUBSTRATE_AGENT=${SUBSTRATE_AGENT:-$(dirname "$BIN")/substrate-agent}
[ -x "$SUBSTRATE_AGENT" ] || SUBSTRATE_AGENT=$TOP/build/substrate-agent

JOB=$("$BIN" build --repo "$R" job --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); JOB=${JOB#*@}
if [[ $JOB != sha256:* ]]; then echo "Bail out! could not build the job image ($JOB)"; exit 1; fi
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$JOB" --key "$T/k1.key" >/dev/null

# spec FILE [json fields...]: a tier-0 jobspec for the signed job image, signed with k1
spec() {
    local f=$1; shift
    local extra=""
    for x in "$@"; do extra="$extra, $x"; done
    printf '{"name": "z", "tier": 0, "image": "%s/job@%s", "timeout": %s, "memory_mb": 128%s}\n' \
        "$REG" "$JOB" "${TO:-30}" "$extra" >"$f"
    SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob "$f" --key "$T/k1.key" >/dev/null
}
run() { "$BIN" sandbox --json "$@" 2>"$T/stderr.txt"; }
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
residual() { q "$1" 'd["teardown"]["residual"]'; }
uid_procs() { ps -eo uid= | awk -v u="$1" '$1 == u' | wc -l; }
cgroups_of() { find /sys/fs/cgroup -maxdepth 3 -name "substrate-job-$1" 2>/dev/null | wc -l; }

# ---- declared env only, the report, the logs ----
export SUBSTRATE_T0_CANARY=leaked-from-the-runner
spec env.json '"command": ["/bin/sh", "-c"]' \
    '"args": ["env | sort; echo uid=$(id -u); echo cwd=$(pwd); echo to-stderr >&2; cat; cat /work/in.txt; echo result >/work/out.txt"]' \
    '"env": {"GREETING": "hello"}' '"stdin": "stdin line\n"' \
    '"inputs": [{"path": "/work/in.txt", "content": "input file\n"}]' '"outputs": {"paths": ["/work/out.txt"]}'
run env.json >r1.json; rc=$?
unset SUBSTRATE_T0_CANARY
OUT=$(q r1.json 'd["stdout"]["text"]')
t_eq "a tier-0 job: exit 0, outcome completed" "$rc $(q r1.json 'd["outcome"]')" "0 completed"
t_eq "  the report says tier 0, a process boundary, not a VM" \
    "$(q r1.json '(d["tier"], d["boundary"], "not a VM" in d["boundary_note"], d["backend"])')" \
    "(0, 'process', True, 'process')"
t_eq "  the env is exactly the declared one (+ the image's PATH): no runner variable" \
    "$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' <<<"$OUT" | grep -vE '^(uid|cwd)=' | cut -d= -f1 | sort | tr '\n' ' ')" \
    "GREETING PATH PWD SHLVL "
t_check "  the canary exported in the runner's environment is not visible" \
    bash -c "! grep -q leaked-from-the-runner r1.json"
t_check "  nothing of \$SUBSTRATE_STATE either" bash -c "! grep -q SUBSTRATE r1.json"
JU=$(q r1.json 'd["process"]["uid"]')
t_eq "  it ran as its per-job uid (not root, not the image's 65534), in /work" \
    "$(grep -E '^(uid|cwd)=' <<<"$OUT" | tr '\n' ' ')$([ "$JU" -ge 1000000000 ] && echo range)" "uid=$JU cwd=/work range"
t_eq "  stdin and the input file reached it; the output came back" \
    "$(grep -cE '^(stdin line|input file)$' <<<"$OUT") $(q r1.json 'd["outputs"][0]["sha256"]')" \
    "2 sha256:$(printf 'result\n' | sha256sum | cut -d' ' -f1)"
SO=$(q r1.json 'd["logs"]["stdout"]'); SE=$(q r1.json 'd["logs"]["stderr"]')
t_eq "  its stdout and stderr are local files under \$SUBSTRATE_STATE/logs/<job id>" \
    "$SO $SE" "$SUBSTRATE_STATE/logs/$(q r1.json 'd["job_id"]').stdout $SUBSTRATE_STATE/logs/$(q r1.json 'd["job_id"]').stderr"
t_eq "  ... holding what the job wrote" "$(cat "$SO" | md5sum) $(cat "$SE")" "$(printf '%s\n' "$OUT" | md5sum) to-stderr"
t_eq "  teardown: residual 0, the init_process check instead of the VMM's" \
    "$(residual r1.json) $(q r1.json '[c["check"] for c in d["teardown"]["checks"]][0]')" "0 init_process"

# ---- the boundary seen from inside ----
spec inside.json '"command": ["/bin/sh", "-c"]' \
    '"args": ["grep -E \"^(CapEff|CapBnd|NoNewPrivs):\" /proc/self/status; ls /proc | grep -cE \"^[0-9]+$\"; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d \" \"; ls /; touch /etc/x 2>&1 || echo no-etc-write"]'
run inside.json >r2.json
IN=$(q r2.json 'd["stdout"]["text"]')
t_eq "inside: no capabilities (effective, bounding), no_new_privs" \
    "$(grep -E '^(CapEff|CapBnd|NoNewPrivs)' <<<"$IN" | awk '{print $2}' | tr '\n' ' ')" "0000000000000000 0000000000000000 1 "
t_check "  its own PID namespace: only a few processes are visible" bash -c "[ \"\$(sed -n 4p <<<'$IN')\" -le 4 ]"
t_eq "  its own network namespace: lo is the only interface" "$(sed -n 5p <<<"$IN")" "lo"
t_check "  its root is the image (busybox's /bin, no host /home or /root)" \
    bash -c "grep -qx bin <<<'$IN' && ! grep -qx home <<<'$IN' && ! grep -qx root <<<'$IN'"
t_check "  the image's files are not its to change" grep -qx no-etc-write <<<"$IN"

# ---- a probe to a port the host holds on loopback: blocked, recorded ----
PORT=$(t_free_port)
$PY -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
open(sys.argv[2], "w").close()
while True:
    c, _ = s.accept()
    open(sys.argv[3], "a").write("x\n"); c.close()
' "$PORT" listen.ready listen.log &
LP=$!
t_on_exit "kill $LP"
for _ in $(seq 1 50); do [ -e listen.ready ] && break; sleep 0.1; done
spec probe.json '"command": ["/bin/sh", "-c", "probe tcp 127.0.0.1:'"$PORT"'; true"]' "\"probes\": [\"127.0.0.1:$PORT\", \"192.0.2.1:80\"]"
run probe.json >r3.json; rc=$?
t_eq "probes: the host's loopback listener and a documentation address, both blocked" \
    "$rc $(q r3.json '[(p["result"], p["guest"]["result"], p["host"]["nic"]) for p in d["egress"]]')" \
    "0 [('blocked', 'refused', 'none'), ('blocked', 'unreachable', 'none')]"
t_eq "  the host's listener saw no connection (the job's 127.0.0.1 is its own lo)" "$(cat listen.log 2>/dev/null | wc -l)" "0"
t_check "  the evidence says why" bash -c "q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \"\$@\"; }; q r3.json 'd[\"egress\"][0][\"host\"][\"evidence\"]' | grep -q 'own network namespace'"

# ---- the deadline: sleep 1000, timeout 2 ----
TO=2 spec sleep.json '"command": ["/bin/sleep", "1000"]'
s0=$(date +%s%N)
run sleep.json >r4.json; rc=$?
el=$(( ($(date +%s%N) - s0) / 1000000 ))
SU=$(q r4.json 'd["process"]["uid"]'); SID=$(q r4.json 'd["job_id"]')
t_eq "sleep 1000 with timeout 2: exit 124, outcome timed_out, residual 0" \
    "$rc $(q r4.json 'd["outcome"]') $(residual r4.json)" "124 timed_out 0"
t_eq "  afterwards: no process of its uid, its cgroup removed" "$(uid_procs "$SU") $(cgroups_of "$SID")" "0 0"
if [ "$el" -le $((2000 + 5000 + 10000)) ]; then t_ok "  the runner returned within the deadline + grace + preparation ($el ms)"
else t_not_ok "  the runner took $el ms for a 2 s deadline"; fi
t_eq "  its (empty) logs are on disk all the same" \
    "$(test -f "$SUBSTRATE_STATE/logs/$SID.stdout" && test -f "$SUBSTRATE_STATE/logs/$SID.stderr" && echo yes)" "yes"

# a job that forks a background sleeper and exits: the sleeper goes too
spec bg.json '"command": ["/bin/sh", "-c", "(sleep 500 &) ; echo started"]'
run bg.json >r5.json; rc=$?
t_eq "a job leaving a background process: exit 0, residual 0, none of its uid left" \
    "$rc $(residual r5.json) $(uid_procs "$(q r5.json 'd["process"]["uid"]')")" "0 0 0"

# ---- refusals ----
spec eg.json '"command": ["/bin/true"]' '"egress": {"allow": ["127.0.0.1:80"]}'
t_fails "tier 0 with egress.allow: refused (125), the rule named" 125 \
    "egress.allow: tier 0 has no egress: loopback only; use tier 2 for allowed egress" "$BIN" sandbox eg.json
spec sec.json '"command": ["/bin/true"]' '"env": {"DB_PASSWORD": "hunter2"}'
t_fails "tier 0 with a secret-like env name: refused (125)" 125 "env: DB_PASSWORD looks like a secret" "$BIN" sandbox sec.json
spec pem.json '"command": ["/bin/true"]' '"env": {"CERT": "-----BEGIN PRIVATE KEY-----"}'
run pem.json >r6.json; rc=$?
t_eq "  ... and a PEM private key as a value: refused, bad_jobspec" "$rc $(q r6.json 'd["outcome"]') $(q r6.json 'd["reason"]')" \
    "125 refused bad_jobspec"
spec user.json '"command": ["/bin/true"]' '"user": "0"'
t_fails "tier 0 with a user: refused (125)" 125 "user: tier 0 runs every job as its own per-job uid" "$BIN" sandbox user.json
spec uns.json '"command": ["/bin/true"]'; rm -f uns.json.sig
run uns.json >r7.json; rc=$?
t_eq "an unsigned tier-0 jobspec: refused (125), no_signature, nothing started" \
    "$rc $(q r7.json 'd["reason"]') $(q r7.json '"process" in d')" "125 no_signature False"
cp env.json alt.json; cp env.json.sig alt.json.sig; sed -i 's/"tier": 0/"tier": 2/' alt.json
run alt.json >r8.json; rc=$?
t_eq "a signed tier-0 jobspec switched to tier 2 after signing: refused (125)" \
    "$rc $(q r8.json 'd["reason"]')" "125 no_trusted_key"

# ---- nothing left (of this test's jobs: other runners may share the machine) ----
n=0
for r in r*.json; do
    u=$(q "$r" 'd.get("process", {}).get("uid", "")'); id=$(q "$r" 'd["job_id"]')
    [ -n "$u" ] && n=$((n + $(uid_procs "$u")))
    [ -n "$id" ] && [ "$id" != None ] && n=$((n + $(cgroups_of "$id")))
done
t_eq "nothing of any job is left: job dirs, job-uid processes, cgroups, mounts" \
    "$(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) $n $(grep -c "$T" /proc/mounts)" "0 0 0"
t_done

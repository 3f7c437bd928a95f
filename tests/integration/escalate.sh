#!/usr/bin/env bash
# Escalation end to end, with the real registry, the real runc and real qemu
# microVMs: a Tier-1 service with an escalate: policy gets a socket (and one
# without gets none); POST /v1/jobs runs a job in a microVM and answers with
# its report, naming the service, its digest and the manifest's digest;
# requests over the policy (egress, timeout, image, tier) are refused with the
# reason and boot nothing; a host-loopback service is unreachable from the job
# (evidence recorded); a forever loop ends in 124 with nothing left; the
# concurrency cap queues, then refuses (503); a promoted policy's per-minute
# rate refuses (429); a client that hangs up cancels its job; stopping the
# service ends and audits its running job; every request is recorded and
# `substrate status` shows them.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "escalate" "needs root (runc, namespaces, cgroups, a uid per job)"; t_done; exit 0; fi
if ! command -v runc >/dev/null; then t_skip "escalate" "runc is not installed (scripts/install-deps)"; t_done; exit 0; fi
if ! [ -x /usr/bin/qemu-system-x86_64 ]; then t_skip "escalate" "qemu-system-x86 is not installed (scripts/install-deps)"; t_done; exit 0; fi
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then t_skip "escalate" "no kernel in /boot (linux-image-amd64, scripts/install-deps)"; t_done; exit 0; fi

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
export SUBSTRATE_AGENT=${SUBSTRATE_AGENT:-$(dirname "$BIN")/substrate-agent}
[ -x "$SUBSTRATE_AGENT" ] || SUBSTRATE_AGENT=$TOP/build/substrate-agent
cleanup_escalate() {
    for m in "$T"/*.yaml; do [ -e "$m" ] && "$BIN" stop "$m" >/dev/null 2>&1; done
    "$BIN" supervise --stop >/dev/null 2>&1
    for p in $(cat "$SUBSTRATE_STATE"/tier1/services/*/state.json 2>/dev/null | sed -n 's/.*"supervisor_pid": \([0-9]*\).*/\1/p'); do
        [ -d /proc/$p ] && grep -q supervise /proc/$p/cmdline 2>/dev/null && kill -9 "$p" 2>/dev/null
    done
    [ -n "${LISTENER:-}" ] && kill "$LISTENER" 2>/dev/null
    return 0
}
t_on_exit cleanup_escalate

AGENT=$("$BIN" build --repo "$R" agent --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); AGENT=${AGENT#*@}
HELLO=$("$BIN" build --repo "$R" hello --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); HELLO=${HELLO#*@}
JOB=$("$BIN" build --repo "$R" job --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); JOB=${JOB#*@}
if [[ $HELLO != sha256:* || $JOB != sha256:* || $AGENT != sha256:* ]]; then
    echo "Bail out! could not build hello/job/agent ($HELLO, $JOB, $AGENT)"; exit 1; fi
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/hello@$HELLO" --key "$T/k1.key" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$JOB" --key "$T/k1.key" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/agent@$AGENT" --key "$T/k1.key" >/dev/null

P=$(t_free_port)
manifest() { # manifest FILE NAME [extra yaml lines...]
    local f=$1 n=$2; shift 2
    {
        echo "name: $n"
        echo "image: $REG/hello@$HELLO"
        echo "readiness: {http: \"http://127.0.0.1:8080/readyz\", interval: 100ms, deadline: 8s}"
        echo "stop_grace: 2s"
        for l in "$@"; do echo "$l"; done
    } >"$f"
}
ESC=(escalate: "  image: $REG/job@$JOB" "  egress: []" "  max_timeout: 20s" "  max_memory: 256Mi"
     "  concurrency: 1" "  queue: 1" "  queue_wait: 60s" "  per_minute: 1000")
M=$T/esc.yaml
manifest "$M" esc-t "ports: [\"127.0.0.1:$P:8080\"]" "${ESC[@]}"
SVC=$SUBSTRATE_STATE/tier1/services/esc-t
SOCK=$SVC/escalate/escalate.sock
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
# post FILE BODY [curl args...]: POST /v1/jobs; the HTTP status on stdout, the body in FILE
post() { local f=$1 b=$2; shift 2
    curl -s -o "$f" -w '%{http_code}' --unix-socket "$SOCK" -H 'Content-Type: application/json' \
        --data-binary "$b" "$@" http://substrate/v1/jobs; }
wait_for() { local end=$((SECONDS + $1)); shift; while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.1; done; return 1; }
leftovers() {
    local n=0
    n=$((n + $(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
    n=$((n + $(t_job_pids esc | wc -l)))
    n=$((n + $(find /sys/fs/cgroup -maxdepth 3 -name 'substrate-job-esc-*' 2>/dev/null | wc -l)))
    echo "$n"
}
records() { ls "$SVC/escalations" 2>/dev/null | wc -l; }

# ---- a policy whose job image does not verify is refused at deploy ----
MB=$T/bad.yaml
manifest "$MB" esc-bad "escalate:" "  image: $REG/job@$HELLO"
out=$("$BIN" reconcile -q "$MB" 2>&1); rc=$?
t_eq "a policy naming a job image the registry lacks: refused (exit 2), naming escalate.image" \
    "$rc $(echo "$out" | grep -c 'escalate.image .*no such image')" "2 1"
# the same digest pushed unsigned into the job repository
"$BIN" pull -q "$REG/hello@$HELLO" --oci "$T/lay:u" >/dev/null && "$BIN" push -q --oci "$T/lay:u" "$REG/job:unsigned" >/dev/null
out=$("$BIN" reconcile -q "$MB" 2>&1); rc=$?
t_eq "  an unsigned one: refused (exit 1), nothing deployed" \
    "$rc $(echo "$out" | grep -c 'escalate.image') $(test -e "$SUBSTRATE_STATE/tier1/services/esc-bad/state.json" && echo deployed)" "1 1 "
[ "$rc" = 1 ] || t_diag "$out"

# ---- the socket ----
t_check "reconcile a service with an escalate: policy" "$BIN" reconcile -q "$M"
cfg=$(ls -d "$SVC"/gen-*/config.json | tail -1)
t_eq "its runtime config binds the socket's directory at /run/substrate" \
    "$(q "$cfg" '[m["source"] for m in d["mounts"] if m["destination"]=="/run/substrate"]')" "['$SVC/escalate']"
t_check "the broker's socket appears" wait_for 10 test -S "$SOCK"
t_eq "  owned by the container's user, mode 0600" "$(stat -c '%u %a' "$SOCK")" "65534 600"
code=$(curl -s -o pol.json -w '%{http_code}' --unix-socket "$SOCK" http://substrate/v1/policy)
t_eq "GET /v1/policy: 200 with the job image and limits" "$code $(q pol.json 'd["escalate"]["image"], d["escalate"]["max_timeout_s"]')" \
    "200 ('$REG/job@$JOB', 20)"

# ---- a job ----
code=$(post r1.json '{"command": ["/bin/sh", "-c"], "args": ["echo hi from the vm; id -u; exit 3"]}')
[ "$code" = 200 ] || t_diag "broker log: $(tail -30 "$SVC/logs/escalate.log" 2>&1)"
t_eq "POST /v1/jobs: 200, the job's output and exit code" \
    "$code $(q r1.json 'd["outcome"], d["exit_code"], d["stdout"]["text"]')" "200 ('completed', 3, 'hi from the vm\n65534\n')"
t_eq "  authorised by the manifest's policy (report and jobspec)" \
    "$(q r1.json 'd["authorization"], d["jobspec"]["authorization"]')" "('manifest-policy', 'manifest-policy')"
t_eq "  origin: the service, its running digest, the manifest's digest" \
    "$(q r1.json 'd["origin"]["service"], d["origin"]["image_digest"], d["origin"]["manifest_digest"]')" \
    "('esc-t', '$HELLO', 'sha256:$(sha256sum "$M" | cut -d' ' -f1)')"
t_eq "  the policy's image, booted as a microVM; teardown residual 0" \
    "$(q r1.json 'd["image"]["digest"], d["backend"], d["teardown"]["residual"]')" "('$JOB', 'qemu-microvm', 0)"

# ---- refusals: nothing boots ----
n0=$(ls "$SUBSTRATE_STATE/tier2/reports" | wc -l)
code=$(post r2.json '{"command": ["/bin/true"], "egress": {"allow": ["127.0.0.1:9"]}}')
t_eq "egress beyond the policy: 403, reason policy, says why" \
    "$code $(q r2.json 'd["reason"], "not in the policy" in d["error"] and "(none)" in d["error"]')" "403 ('policy', True)"
code=$(post r3.json '{"command": ["/bin/true"], "timeout": 60}')
t_eq "a timeout over max_timeout: 403, says the cap" "$code $(q r3.json '"max_timeout (20s" in d["error"]')" "403 True"
code=$(post r4.json "{\"image\": \"$REG/hello@$HELLO\"}")
t_eq "naming another image: 403" "$code $(q r4.json 'd["reason"]')" "403 policy"
code=$(post r5.json '{"tier": 0}')
t_eq "asking for Tier-0: 403" "$code $(q r5.json '"Tier-0 is never reachable" in d["error"]')" "403 True"
code=$(post r6.json '{"command": ["/bin/true"], "bogus": 1}')
t_eq "an unknown field: 400, named" "$code $(q r6.json 'd["reason"], "bogus" in d["error"]')" "400 ('bad_request', True)"
code=$(post r7.json '{not json')
t_eq "not JSON: 400" "$code" 400
code=$(curl -s -o r8.json -w '%{http_code}' --unix-socket "$SOCK" -H 'Transfer-Encoding: chunked' --data-binary '{}' http://substrate/v1/jobs)
t_eq "a chunked body: 411" "$code" 411
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" http://substrate/v1/nothing)
t_eq "an unknown path: 404" "$code" 404
t_eq "  none of them booted anything (no new report)" "$(ls "$SUBSTRATE_STATE/tier2/reports" | wc -l)" "$n0"

# ---- a host-loopback service is out of reach ----
HP=$(t_free_port)
$PY -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
n=0
s.settimeout(0.2)
import os, time
end=time.time()+300
while time.time()<end and not os.path.exists(sys.argv[2]):
    try:
        c,_=s.accept(); n+=1; c.close()
    except OSError: pass
open(sys.argv[3],"w").write(str(n))
' "$HP" "$T/stop-listener" "$T/accepted" &
LISTENER=$!
code=$(post r9.json "{\"command\": [\"/bin/sh\", \"-c\"], \"args\": [\"probe tcp 127.0.0.1:$HP; probe tcp 10.0.2.2:$HP; true\"], \"probes\": [\"127.0.0.1:$HP\", \"10.0.2.2:$HP\"]}")
touch "$T/stop-listener"; wait "$LISTENER"; LISTENER=
t_eq "a job probing a host-loopback service: both blocked, with evidence" \
    "$code $(q r9.json '[p["result"] for p in d["egress"]], all(p["guest"] for p in d["egress"])')" "200 (['blocked', 'blocked'], True)"
t_eq "  the host's listener saw no connection" "$(cat "$T/accepted")" 0

# ---- a runaway ----
code=$(post r10.json '{"command": ["/bin/sh", "-c"], "args": ["while :; do :; done"], "timeout": 6}')
t_eq "a forever loop: 124 (timed_out), residual 0" \
    "$code $(q r10.json 'd["outcome"], d["runner_exit_code"], d["teardown"]["residual"]')" "200 ('timed_out', 124, 0)"
t_eq "  nothing of it left (job dirs, job-uid processes, cgroups)" "$(leftovers)" 0

# ---- concurrency 1, queue 1: the second waits, the third is refused ----
body='{"command": ["/bin/sh", "-c"], "args": ["sleep 3; echo slept"], "timeout": 15}'
post c1.json "$body" >c1.code & C1=$!
sleep 0.5
post c2.json "$body" >c2.code & C2=$!
sleep 0.5
post c3.json "$body" >c3.code
wait "$C1" "$C2"
t_eq "concurrency: the third request is refused busy (503) while one runs and one waits" \
    "$(cat c3.code) $(q c3.json 'd["reason"]')" "503 busy"
t_eq "  the first and the second ran" "$(cat c1.code) $(cat c2.code) $(q c1.json 'd["stdout"]["text"]') $(q c2.json 'd["stdout"]["text"]')" \
    "200 200 slept slept"
t_eq "  the second was queued (queued_ms > 1000), and the queue did not count against its timeout" \
    "$(q c2.json 'd["escalation"]["queued_ms"] > 1000, d["outcome"]')" "(True, 'completed')"

# ---- a client that hangs up cancels its job ----
before=$(records)
post h1.json '{"command": ["/bin/sh", "-c"], "args": ["sleep 60"], "timeout": 20}' -m 5 >/dev/null
newest() { ls -t "$SVC/escalations"/*.json | head -1; }
t_check "a client that hangs up mid-job: its job is cancelled" \
    wait_for 20 sh -c "grep -q '\"outcome\": \"cancelled\"' \"\$(ls -t '$SVC/escalations'/*.json | head -1)\""
t_eq "  its teardown was audited: residual 0, and nothing is left" \
    "$(q "$(newest)" 'd["report"]["teardown"]["residual"], "client disconnected" in d["report"]["error"]') $(leftovers)" "(0, True) 0"

# ---- records and status ----
t_eq "every request is recorded (one file each)" "$(records)" "$((before + 1))"
t_eq "  ... with its decision: done, refused" \
    "$($PY -c 'import json,glob,sys; r=[json.load(open(f)) for f in glob.glob(sys.argv[1]+"/*.json")]; print(sorted(set(x["state"] for x in r)))' "$SVC/escalations")" \
    "['done', 'refused']"
"$BIN" status esc-t >st.txt
t_check "status shows the escalated jobs" grep -q 'escalation: broker running; jobs: 0 running, 0 queued, 6 done' st.txt
"$BIN" status esc-t --json >st.json
t_eq "status --json: counts and the last reports" "$(q st.json 'd["escalations"]["counts"]["refused"], len(d["escalations"]["last"])')" "(7, 5)"

# ---- a promoted policy: its rate applies to the next request ----
manifest "$M" esc-t "ports: [\"127.0.0.1:$P:8080\"]" "${ESC[@]/per_minute: 1000/per_minute: 1}"
t_check "promotion to a policy of 1 request a minute" "$BIN" reconcile -q "$M"
code=$(post p1.json '{"command": ["/bin/true"]}' -D p1.head)
t_eq "  more than one request was admitted in the last minute: the next is refused 429, with Retry-After" \
    "$code $(q p1.json 'd["reason"], "per_minute" in d["error"]') $(grep -ci '^retry-after: [0-9]' p1.head)" "429 ('rate', True) 1"

# ---- stopping the service ends its running job ----
manifest "$M" esc-t "ports: [\"127.0.0.1:$P:8080\"]" "${ESC[@]}"
t_check "promotion back to per_minute 1000" "$BIN" reconcile -q "$M"
post s2.json '{"command": ["/bin/sh", "-c"], "args": ["sleep 60"], "timeout": 20}' >s2.code &
S2=$!
t_check "  a long job is running" wait_for 20 sh -c "grep -q '\"state\": \"running\"' '$SVC'/escalations/*.json && find /sys/fs/cgroup -maxdepth 3 -name 'substrate-job-esc-*' | grep -q ."
t_check "substrate stop: exit 0" "$BIN" stop "$M"
wait "$S2"
[ "$(cat s2.code)" = 200 ] || t_diag "broker log: $(tail -5 "$SVC/logs/escalate.log" 2>&1)" "newest record: $(tail -c 600 "$(newest)")" "supervise.log: $(tail -5 "$SUBSTRATE_STATE/tier1/supervise.log")"
t_eq "  the running job was cancelled and audited (its report came back)" \
    "$(cat s2.code) $(q s2.json 'd["outcome"], d["teardown"]["residual"], "stopping" in d["error"]')" "200 ('cancelled', 0, True)"
t_eq "  nothing left: no job, no socket, no broker" \
    "$(leftovers) $(test -e "$SOCK" && echo sock) $(pgrep -f "supervise --escalation esc-t" | wc -l)" "0  0"

# ---- the reference agent: its manifest as shipped, pinned; snippets over HTTP ----
AP=$(t_free_port)
MA=$T/agent.yaml
sed -e "s|^image: .*|image: $REG/agent@$AGENT|" -e "s|^  image: .*|  image: $REG/job@$JOB|" \
    -e "s|127.0.0.1:8081:8080|127.0.0.1:$AP:8080|" "$TOP/platform/manifests/agent.service.yaml" >"$MA"
t_check "reconcile the reference agent (platform/manifests/agent.service.yaml, pinned)" "$BIN" reconcile -q "$MA"
arun() { curl -s --noproxy '*' -o "$1" -w '%{http_code}' -m 60 --data-binary "$2" "http://127.0.0.1:$AP/run"; }
code=$(arun a1.json 'echo "snippet says $((6*7))"; exit 5')
t_eq "the agent escalates a snippet: its output and exit code come back" \
    "$code $(q a1.json 'd["stdout"]["text"], d["exit_code"], d["origin"]["service"], d["origin"]["image_digest"]')" \
    "200 ('snippet says 42\n', 5, 'agent', '$AGENT')"
code=$(arun a2.json "probe tcp 10.0.2.2:$P")
t_eq "  a snippet reaching for a host-loopback service is blocked (probe exits 1, not connected), with evidence" \
    "$code $(q a2.json 'd["outcome"], d["exit_code"], "\"result\":\"connected\"" in d["stdout"]["text"], "\"probe\":\"tcp\"" in d["stdout"]["text"]')" \
    "200 ('completed', 1, False, True)"
"$BIN" stop "$MA" >/dev/null 2>&1

# ---- a service without escalate: has no socket ----
M2=$T/plain.yaml
manifest "$M2" plain-t
t_check "reconcile a service without escalate:" "$BIN" reconcile -q "$M2"
cfg2=$(ls -d "$SUBSTRATE_STATE"/tier1/services/plain-t/gen-*/config.json | tail -1)
sleep 1
t_eq "  no /run/substrate mount, no socket, no broker" \
    "$(q "$cfg2" '[m for m in d["mounts"] if m["destination"].startswith("/run/substrate")]') $(ls "$SUBSTRATE_STATE/tier1/services/plain-t/escalate" 2>&1 | grep -c sock) $(pgrep -f 'supervise --escalation plain-t' | wc -l)" \
    "[] 0 0"
"$BIN" stop "$M2" >/dev/null 2>&1
t_done

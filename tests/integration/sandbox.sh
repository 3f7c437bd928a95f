#!/usr/bin/env bash
# Tier-2 end to end, with the real registry and a real qemu microVM (TCG here;
# KVM cannot boot a guest on these machines): a signed jobspec runs the
# signed `job` image; output, exit code, stdin, env, inputs and outputs
# arrive; a probe with no allow rule is blocked with the guest's and the
# host's evidence; timeouts (a sleeping job, a guest that never boots) end in
# 124; altered, unsigned and wrongly signed jobspecs and images are refused
# (125) before anything boots; the VMM runs jailed (its own uid, namespaces,
# cgroup, seccomp); qemu killed from outside, the runner stopped with SIGTERM
# and the runner SIGKILLed all leave nothing behind (the last one swept by
# the next run); 4 jobs at once stay apart and clean.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
if [ "$(id -u)" != 0 ]; then t_skip "sandbox" "needs root (namespaces, cgroups, a uid per job)"; t_done; exit 0; fi
if ! [ -x /usr/bin/qemu-system-x86_64 ]; then t_skip "sandbox" "qemu-system-x86 is not installed (scripts/install-deps)"; t_done; exit 0; fi
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then t_skip "sandbox" "no kernel in /boot (linux-image-amd64, scripts/install-deps)"; t_done; exit 0; fi

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k2" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
export SUBSTRATE_AGENT=${SUBSTRATE_AGENT:-$(dirname "$BIN")/substrate-agent}
[ -x "$SUBSTRATE_AGENT" ] || SUBSTRATE_AGENT=$TOP/build/substrate-agent

JOB=$("$BIN" build --repo "$R" job --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); JOB=${JOB#*@}
if [[ $JOB != sha256:* ]]; then echo "Bail out! could not build the job image ($JOB)"; exit 1; fi
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$JOB" --key "$T/k1.key" >/dev/null
# the same image under another digest: unsigned, and signed by an untrusted key
"$BIN" pull -q "$REG/job@$JOB" --oci "$T/lay:u" >/dev/null
umoci config --image "$T/lay:u" --config.label=dev.substrate.test=unsigned >/dev/null 2>&1
JU=$("$BIN" push -q --oci "$T/lay:u" "$REG/job:unsigned" | awk '{print $NF}'); JU=${JU#*@}
umoci config --image "$T/lay:u" --config.label=dev.substrate.test=otherkey >/dev/null 2>&1
JK=$("$BIN" push -q --oci "$T/lay:u" "$REG/job:otherkey" | awk '{print $NF}'); JK=${JK#*@}
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$JK" --key "$T/k2.key" >/dev/null
# signed, but its image config says root: the job still runs as 65534 unless the jobspec says 0
umoci config --image "$T/lay:u" --config.label=dev.substrate.test=root --config.user=0 >/dev/null 2>&1
JR=$("$BIN" push -q --oci "$T/lay:u" "$REG/job:root" | awk '{print $NF}'); JR=${JR#*@}
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$JR" --key "$T/k1.key" >/dev/null
for d in "$JU" "$JK" "$JR"; do [[ $d == sha256:* ]] || { echo "Bail out! test images ($JU $JK)"; exit 1; }; done

# spec FILE [json fields...]: a jobspec for the signed job image, signed with k1
# (timeout $TO, default 60)
spec() {
    local f=$1; shift
    local extra=""
    for x in "$@"; do extra="$extra, $x"; done
    printf '{"name": "t", "image": "%s/job@%s", "timeout": %s, "memory_mb": 128%s}\n' "$REG" "$JOB" "${TO:-60}" "$extra" >"$f"
    SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob "$f" --key "$T/k1.key" >/dev/null
}
run() { "$BIN" sandbox --json "$@" 2>"$T/stderr.txt"; }
# q REPORT EXPR: a Python expression over the report d
q() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
residual() { q "$1" 'd["teardown"]["residual"]'; }
# nothing of any job left: job dirs, processes of the job uid range, cgroups
leftovers() {
    local n=0
    n=$((n + $(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
    n=$((n + $(t_job_pids t | wc -l)))
    n=$((n + $(find /sys/fs/cgroup -maxdepth 3 -name 'substrate-job-t-*' 2>/dev/null | wc -l)))
    echo "$n"
}

# ---- echo, env, stdin, inputs, outputs ----
spec echo.json '"command": ["/bin/sh", "-c"]' \
    '"args": ["echo hello from $WHO; cat; cat /in/a.txt; id -u; pwd; echo result >/out/r.txt"]' \
    '"env": {"WHO": "the guest"}' '"stdin": "stdin line\n"' '"workdir": "/tmp"' \
    '"inputs": [{"path": "/in/a.txt", "content": "input file\n"}]' '"outputs": {"paths": ["/out/r.txt"]}'
run echo.json >r1.json; rc=$?
t_eq "echo job: exit 0, outcome completed" "$rc $(q r1.json 'd["outcome"]')" "0 completed"
t_eq "  its stdout: echo, env, stdin, input file, uid 65534 (the image's is not root... it is 65534), workdir" \
    "$(q r1.json 'd["stdout"]["text"]')" "$(printf 'hello from the guest\nstdin line\ninput file\n65534\n/tmp')"
t_eq "  the output file came back (sha256 of 'result\\n')" "$(q r1.json 'd["outputs"][0]["sha256"]')" \
    "sha256:$(printf 'result\n' | sha256sum | cut -d' ' -f1)"
t_check "  ... and was saved beside the report" test -f "$(q r1.json 'd["outputs"][0]["saved_to"]')"
t_eq "  teardown: residual 0, every check listed" "$(residual r1.json) $(q r1.json 'len(d["teardown"]["checks"]) >= 7')" "0 True"
t_eq "  report names the jobspec key, the image key, backend, accelerator" \
    "$(q r1.json '(d["jobspec"]["key_id"] == d["image"]["key_id"] != "", d["backend"], d["accelerator"] in ("tcg","kvm"))')" \
    "(True, 'qemu-microvm', True)"
t_check "  the report is kept under \$SUBSTRATE_STATE/tier2/reports" test -f "$(q r1.json 'd["report_file"]')"
t_eq "  boot measured" "$(q r1.json 'd["boot_ms"] > 0')" "True"

# ---- caps: stdout over 1 MiB is cut and says so; an output over max_bytes is refused by name ----
spec big.json '"command": ["/bin/sh", "-c", "/bin/busybox yes | /bin/busybox head -c 2000000; echo x >/out/a; /bin/busybox yes | /bin/busybox head -c 5000 >/out/b"]' \
    '"outputs": {"paths": ["/out/a", "/out/b"], "max_bytes": 4096}'
run big.json >rb.json; rc=$?
t_eq "2 MB of stdout: all counted, 1 MiB kept, truncated" \
    "$rc $(q rb.json 'd["stdout"]["bytes"]') $(q rb.json 'len(d["stdout"]["text"])') $(q rb.json 'd["stdout"]["truncated"]')" \
    "0 2000000 1048576 True"
t_eq "  an output within max_bytes comes back, one over it is refused by name" \
    "$(q rb.json '[(o["path"], o.get("bytes"), o.get("error")) for o in d["outputs"]]')" \
    "[('/out/a', 2, None), ('/out/b', None, \"over the outputs' size cap\")]"

# ---- the user: an image that says root runs as 65534; root only when the jobspec says so ----
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60, "command": ["/bin/sh", "-c", "id -u; id -g"]}\n' "$REG" "$JR" >root1.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob root1.json --key "$T/k1.key" >/dev/null
run root1.json >rr1.json
t_eq "an image whose user is root: the job runs as 65534:65534" "$(q rr1.json 'd["stdout"]["text"].split()')" "['65534', '65534']"
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60, "user": "0", "command": ["/bin/sh", "-c", "id -u"]}\n' "$REG" "$JR" >root2.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob root2.json --key "$T/k1.key" >/dev/null
run root2.json >rr2.json
t_eq "  ... and as root when the jobspec says user 0" "$(q rr2.json 'd["stdout"]["text"].split()')" "['0']"

# ---- the job's own exit code, and the human output ----
spec fail.json '"command": ["/bin/sh", "-c", "echo to-stderr >&2; exit 7"]'
"$BIN" sandbox fail.json >out.txt 2>err.txt; rc=$?
t_eq "failing command: the runner exits with the job's code (7)" "$rc" "7"
t_check "  the job's stderr is on ours, and the summary says completed, exit 7" \
    grep -q "to-stderr" err.txt
t_check "  ... summary" grep -q "completed, exit 7" err.txt

# ---- the accelerator: KVM only when a probe boot shows it works ----
t_eq "the report says which accelerator ran, and why" \
    "$(q r1.json 'd["accelerator"] in ("tcg", "kvm") and len(d["accelerator_why"]) > 0')" "True"
# a /dev/kvm that is not KVM at all (the null device), in a private mount
# namespace with a /dev of our own: the probe boot must fail and TCG run
cat >fakekvm.sh <<'SH'
set -e
mount -t tmpfs -o mode=755 tmpfs /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9
mkdir /dev/net; mknod -m 666 /dev/net/tun c 10 200
mknod -m 660 /dev/kvm c 1 3
exec "$@"
SH
unshare --mount --propagation private sh fakekvm.sh "$BIN" sandbox --json fail.json >rk.json 2>/dev/null; rc=$?
t_eq "a /dev/kvm that boots nothing: the probe boot fails, the job runs on TCG (exit 7)" \
    "$rc $(q rk.json 'd["accelerator"]') $(q rk.json '"KVM probe boot" in d["accelerator_why"]')" "7 tcg True"
t_eq "  the verdict is cached (kvm: false), and the probe left nothing" \
    "$(q "$SUBSTRATE_STATE/tier2/cache/accel.json" 'd["kvm"]') $(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 | wc -l)" "False 0"
if [ ! -e /dev/kvm ]; then
    SUBSTRATE_ACCEL=kvm run fail.json >rk2.json; rc=$?
    t_eq "KVM forced where there is none: refused by the jail, 125, says /dev/kvm" \
        "$rc $(q rk2.json 'd["outcome"]') $(q rk2.json '"/dev/kvm" in d["error"]')" "125 failed True"
fi

# ---- egress: no allow rule -> blocked, with both sides' evidence ----
spec probe.json '"command": ["/bin/true"]' '"probes": ["192.0.2.1:80", "10.0.2.2:443"]'
run probe.json >r2.json; rc=$?
t_eq "probes without an allow rule: job completes (exit 0)" "$rc" "0"
t_eq "  each probe blocked; guest saw ENETUNREACH; host attached no NIC" \
    "$(q r2.json '[(p["result"], p["guest"]["errno"], p["host"]["nic"]) for p in d["egress"]]')" \
    "[('blocked', 'ENETUNREACH', 'none'), ('blocked', 'ENETUNREACH', 'none')]"

# ---- egress allowed: servers in a namespace this test made, reached only through the allowlist ----
UP=sbxup-$$
ip netns add "$UP"
t_on_exit "ip netns del $UP"
ip -n "$UP" link set lo up
ip -n "$UP" addr add 198.18.0.1/32 dev lo
ip -n "$UP" addr add 198.18.0.2/32 dev lo
cat >srv.py <<'PY'
import socket, sys, threading, os
def serve(addr, port, log):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16)
    while True:
        c, _ = s.accept()
        with open(log, "a") as f: f.write("x\n")
        c.sendall(b"hi\n"); c.close()
for a, p, l in (("198.18.0.1", 8080, "srv1.log"), ("198.18.0.2", 8081, "srv2.log")):
    open(l, "w").close()
    threading.Thread(target=serve, args=(a, p, l), daemon=True).start()
open("srv.ready", "w").close()
threading.Event().wait(600)
PY
ip netns exec "$UP" $PY srv.py &
SRVPID=$!
t_on_exit "kill $SRVPID"
for _ in $(seq 1 50); do [ -e srv.ready ] && break; sleep 0.1; done
spec egress.json '"command": ["/bin/sh", "-c", "probe tcp 198.18.0.1:8080; probe tcp 198.18.0.2:8081; true"]' \
    '"egress": {"allow": ["198.18.0.1:8080"]}' '"probes": ["198.18.0.1:8080", "198.18.0.2:8081"]'
SUBSTRATE_JOB_UPLINK_NETNS=$UP run egress.json >re.json; rc=$?
t_eq "egress allowlist: job completes; the allowed target connects, the other is blocked" \
    "$rc $(q re.json '[p["result"] for p in d["egress"]]')" "0 ['allowed', 'blocked']"
t_eq "  host evidence: the allow rule accepted packets, the job's nftables dropped the other's" \
    "$(q re.json '[p["host"]["packets"] > 0 for p in d["egress"]]')" "[True, True]"
t_eq "  the allowed server saw the probe and the job (2), the other none" "$(wc -l <srv1.log) $(wc -l <srv2.log)" "2 0"
t_eq "  the job's own probe tool agrees (connected, then timeout)" \
    "$(q re.json 'd["stdout"]["text"].count(chr(34)+"result"+chr(34)+":"+chr(34)+"connected")') $(q re.json 'd["stdout"]["text"].count(chr(34)+"result"+chr(34)+":"+chr(34)+"timeout")')" "1 1"
t_eq "  residual 0, the egress check included; no substrate netns is left" \
    "$(residual re.json) $(q re.json '[c["check"] for c in d["teardown"]["checks"]].count("egress")') $(ip netns list | grep -c '^substrate-')" "0 1 0"

# a runner with egress SIGKILLed: its qemu dies with it, its egress namespace stays until the next run sweeps it
TO=40 spec egk.json '"command": ["/bin/sleep", "30"]' '"egress": {"allow": ["198.18.0.1:8080"]}'
SUBSTRATE_JOB_UPLINK_NETNS=$UP "$BIN" sandbox -q egk.json >/dev/null 2>&1 &
rp=$!
for _ in $(seq 1 100); do [ "$(ip netns list | grep -c '^substrate-')" = 1 ] && break; sleep 0.1; done
sleep 1
kill -KILL "$rp"; wait "$rp" 2>/dev/null
t_eq "runner with egress SIGKILLed: its egress namespace and uplink veth are left behind" \
    "$(ip netns list | grep -c '^substrate-') $(ip -n "$UP" -o link show | grep -c ' sj-')" "1 1"
spec sweep2.json '"command": ["/bin/true"]'
run sweep2.json >rsw.json
t_eq "  the next run sweeps them (namespace and veth gone, residual 0, the egress check listed)" \
    "$(ip netns list | grep -c '^substrate-') $(ip -n "$UP" -o link show | grep -c ' sj-') $(q rsw.json 'd["swept"][0]["teardown"]["residual"]') $(q rsw.json '[c["check"] for c in d["swept"][0]["teardown"]["checks"]].count("egress")')" \
    "0 0 0 1"

# ---- timeouts ----
TO=5 spec sleep.json '"command": ["/bin/sleep", "600"]'
s0=$(date +%s%N)
run sleep.json >r3.json; rc=$?
el=$(( ($(date +%s%N) - s0) / 1000000 ))
t_eq "sleep 600 with timeout 5: exit 124, timed_out, residual 0" \
    "$rc $(q r3.json 'd["timed_out"]') $(residual r3.json)" "124 True 0"
if [ "$el" -le $((5000 + 5000 + 15000)) ]; then t_ok "  the runner returned within the deadline + grace + preparation ($el ms)"
else t_not_ok "  the runner took $el ms for a 5 s deadline"; fi
TO=4 spec hang.json '"command": ["/bin/true"]'
SUBSTRATE_TEST_GUEST_HANG=boot run hang.json >r4.json; rc=$?
t_eq "a guest that never boots: 124, timed out, no boot time, residual 0" \
    "$rc $(q r4.json 'd["timed_out"]') $(q r4.json 'd["boot_ms"]') $(residual r4.json)" "124 True None 0"

# ---- a guest kernel panic (root in the guest may do that): a failed job, nothing left ----
spec panic.json '"user": "0"' '"command": ["/bin/sh", "-c", "echo c >/proc/sysrq-trigger; sleep 30"]'
run panic.json >rpa.json; rc=$?
t_eq "a guest that panics: 125, outcome failed, the VMM exited, residual 0" \
    "$rc $(q rpa.json 'd["outcome"]') $(q rpa.json '"VMM exited" in d["error"] or "guest stopped" in d["error"]') $(residual rpa.json)" \
    "125 failed True 0"

# ---- refusals before anything boots ----
cp echo.json altered.json; cp echo.json.sig altered.json.sig; sed -i 's/hello from/HELLO FROM/' altered.json
run altered.json >r5.json; rc=$?
t_eq "jobspec changed after signing: 125, refused, no_trusted_key, no VM" \
    "$rc $(q r5.json 'd["outcome"]') $(q r5.json 'd["reason"]') $(q r5.json '"vmm" in d')" "125 refused no_trusted_key False"
spec other.json '"command": ["/bin/true"]'
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob other.json --key "$T/k2.key" >/dev/null
cp k2.pub other.json.pub
run other.json >r6.json; rc=$?
t_eq "signed by an untrusted key (its .pub lying beside it): refused (125)" "$rc $(q r6.json 'd["outcome"]')" "125 refused"
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60, "keys": ["k2.pub"]}\n' "$REG" "$JOB" >ownkey.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob ownkey.json --key "$T/k2.key" >/dev/null
run ownkey.json >r6b.json; rc=$?
t_eq "a jobspec naming its own key, signed by that key only: refused (125)" "$rc $(q r6b.json 'd["outcome"]')" "125 refused"
rm -f unsigned.json.sig; spec unsigned.json '"command": ["/bin/true"]'; rm -f unsigned.json.sig
run unsigned.json >r7.json; rc=$?
t_eq "an unsigned jobspec: refused (125), reason no_signature" "$rc $(q r7.json 'd["reason"]')" "125 no_signature"
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60}\n' "$REG" "$JU" >ui.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob ui.json --key "$T/k1.key" >/dev/null
run ui.json >r8.json; rc=$?
t_eq "an unsigned image: refused (125), no_signature" "$rc $(q r8.json 'd["reason"]')" "125 no_signature"
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60}\n' "$REG" "$JK" >ki.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob ki.json --key "$T/k1.key" >/dev/null
run ki.json >r9.json; rc=$?
t_eq "an image signed by another key: refused (125), no_trusted_key" "$rc $(q r9.json 'd["reason"]')" "125 no_trusted_key"
printf '{"name": "t", "image": "%s/job@%s", "timeout": 60, "bogus": 1}\n' "$REG" "$JOB" >bad.json
SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob bad.json --key "$T/k1.key" >/dev/null
t_fails "a signed but malformed jobspec: 125, names the field" 125 "bogus" "$BIN" sandbox bad.json
t_fails "no jobspec argument: 125, usage" 125 "JOBSPEC" "$BIN" sandbox

# ---- the jail, seen from the host while a job runs ----
TO=40 spec jail.json '"command": ["/bin/sleep", "30"]'
"$BIN" sandbox --json jail.json >r10.json 2>/dev/null &  # not via a function: $! must be the runner
rp=$!
qp=""
for _ in $(seq 1 200); do
    qp=$(t_job_pids t | while read -r p; do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in qemu-system*) echo "$p" ;; esac; done | head -1)
    [ -n "$qp" ] && break; sleep 0.1
done
if [ -n "$qp" ]; then
    st=/proc/$qp/status
    # qemu installs its -sandbox filter during its own start-up, before the guest runs
    for _ in $(seq 1 100); do [ "$(awk '/^Seccomp:/ {print $2}' "$st")" = 2 ] && break; sleep 0.1; done
    t_eq "the VMM runs as a job uid (not root), no capabilities, no_new_privs, seccomp filter" \
        "$(awk '/^Uid:/ {print ($2 >= 1000000000)} /^CapEff:/ {print $2} /^NoNewPrivs:/ {print $2} /^Seccomp:/ {print $2}' "$st" | tr '\n' ' ')" \
        "1 0000000000000000 1 2 "
    same=0
    for ns in mnt pid net ipc uts; do [ "$(readlink /proc/$qp/ns/$ns)" = "$(readlink /proc/self/ns/$ns)" ] && same=$((same+1)); done
    t_eq "  in its own mount, pid, net, ipc and uts namespaces" "$same" "0"
    t_check "  in a cgroup of its own (substrate-job-<id>)" grep -q "substrate-job-t-" /proc/$qp/cgroup
    t_check "  its root is not the host's (no /etc/passwd there)" test ! -e /proc/$qp/root/etc/passwd
    # qemu killed by someone else, mid-job
    kill -9 "$qp"
    wait "$rp"; rc=$?
    t_eq "qemu SIGKILLed from outside: 125, outcome failed, residual 0" \
        "$rc $(q r10.json 'd["outcome"]') $(residual r10.json)" "125 failed 0"
else
    t_not_ok "found the jailed qemu process"; kill "$rp" 2>/dev/null; wait "$rp"
fi

# ---- the runner stopped with SIGTERM mid-job ----
TO=40 spec term.json '"command": ["/bin/sleep", "30"]'
"$BIN" sandbox --json term.json >r11.json 2>/dev/null &
rp=$!
for _ in $(seq 1 100); do [ -n "$(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 -name 't-*' 2>/dev/null)" ] && break; sleep 0.1; done
sleep 1
kill -TERM "$rp"; wait "$rp"; rc=$?
t_eq "runner SIGTERMed mid-job: 125, outcome interrupted, residual 0" \
    "$rc $(q r11.json 'd["outcome"]') $(residual r11.json)" "125 interrupted 0"
t_eq "  nothing of it is left (job dirs, job-uid processes, cgroups)" "$(leftovers)" "0"

# ---- the runner SIGKILLed: its VMM dies with it; the next run sweeps ----
"$BIN" sandbox -q term.json >/dev/null 2>&1 &
rp=$!
for _ in $(seq 1 100); do [ -n "$(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 -name 't-*' 2>/dev/null)" ] && break; sleep 0.1; done
sleep 1
kill -KILL "$rp"; wait "$rp" 2>/dev/null
for _ in $(seq 1 50); do [ "$(t_job_pids t | wc -l)" = 0 ] && break; sleep 0.1; done
t_eq "runner SIGKILLed: its qemu died with it (parent-death signal)" \
    "$(t_job_pids t | wc -l)" "0"
t_eq "  its job dir is still there (nothing ran to remove it)" \
    "$(find "$SUBSTRATE_STATE/tier2/jobs" -mindepth 1 -maxdepth 1 | wc -l)" "1"
run fail.json >r12.json
t_eq "  the next run swept it and says so (residual 0)" \
    "$(q r12.json 'len(d["swept"])') $(q r12.json 'd["swept"][0]["teardown"]["residual"]')" "1 0"
t_eq "  nothing is left" "$(leftovers)" "0"

# ---- 4 jobs at once ----
pids=()
for i in 1 2 3 4; do
    spec "par$i.json" '"command": ["/bin/sh", "-c"]' "\"args\": [\"echo job-$i; id -u\"]"
    "$BIN" sandbox --json "par$i.json" >"rp$i.json" 2>/dev/null &
    pids+=($!)
done
ok=0
for i in 1 2 3 4; do
    wait "${pids[$((i-1))]}"; rc=$?
    [ "$rc $(q "rp$i.json" 'd["stdout"]["text"].split()[0]') $(residual "rp$i.json")" = "0 job-$i 0" ] && ok=$((ok+1))
done
t_eq "4 jobs at once: each its own output, exit 0, residual 0" "$ok" "4"
t_eq "  4 distinct job ids and VMM uids" \
    "$(for i in 1 2 3 4; do q "rp$i.json" 'd["job_id"]'; done | sort -u | wc -l) $(for i in 1 2 3 4; do q "rp$i.json" 'd["vmm"]["uid"]'; done | sort -u | wc -l)" "4 4"
t_eq "  nothing is left" "$(leftovers)" "0"
t_done

#!/usr/bin/env bash
# The local registry daemon: start / status / stop, idempotence, refusals, and
# that stop never signals a process that is not our docker-registry.
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
pid_alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
json_field() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

for c in registry push pull inspect; do
    t_fails "$c --help documents usage, exit codes and examples" 0 'Exit codes:.*' \
        bash -c "'$BIN' $c --help | tr '\n' ' ' | grep -E 'Usage: substrate $c.*Exit codes:.*Examples:'"
done
t_fails "registry without an action is a usage error" 2 'missing action' "$BIN" registry
t_fails "registry with an unknown action is a usage error" 2 'unknown action "launch"' "$BIN" registry launch

# --- start ---
t_registry
PIDFILE=$SUBSTRATE_STATE/registry/registry.pid
pid=$(cat "$PIDFILE")
t_check "the recorded pid is a live process" pid_alive "$pid"
t_check "it is docker-registry run with our config" \
    grep -q "$SUBSTRATE_STATE/registry/config.yml" "/proc/$pid/cmdline"
t_check "start printed the address, pid and how to stop it" \
    grep -Eq "started at $SUBSTRATE_REGISTRY \(pid $pid\); stop it with .substrate registry stop." "$T/registry-start.log"
t_eq "the registry answers GET /v2/ with 200" \
    "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://$SUBSTRATE_REGISTRY/v2/")" 200
t_check "the config listens on the loopback address only" \
    grep -q "addr: \"$SUBSTRATE_REGISTRY\"" "$SUBSTRATE_STATE/registry/config.yml"
t_check "storage is under the state dir" \
    grep -q "rootdirectory: \"$SUBSTRATE_STATE/registry/data\"" "$SUBSTRATE_STATE/registry/config.yml"

# --- idempotent start ---
out=$("$BIN" registry start 2>&1); rc=$?
t_eq "a second start succeeds" "$rc" 0
t_fails "a second start says it was already running, same pid" 0 "already running at $SUBSTRATE_REGISTRY \(pid $pid\)" \
    echo "$out"
t_eq "the pid file still names the first daemon" "$(cat "$PIDFILE")" "$pid"

t_fails "start for the same state dir on another address is refused while it runs" 3 \
    "already running at $SUBSTRATE_REGISTRY \(pid $pid\); stop it first" \
    env SUBSTRATE_REGISTRY=127.0.0.1:$(t_free_port) "$BIN" registry start

# --- status ---
t_fails "status reports running and answering" 0 "running \(pid $pid\) at $SUBSTRATE_REGISTRY, answering" \
    "$BIN" registry status
js=$("$BIN" registry status --json)
t_eq "status --json: running" "$(json_field running <<<"$js")" True
t_eq "status --json: answering" "$(json_field answering <<<"$js")" True
t_eq "status --json: pid" "$(json_field pid <<<"$js")" "$pid"
t_eq "status --json: address" "$(json_field address <<<"$js")" "$SUBSTRATE_REGISTRY"

# --- another state dir on the same port: the port is taken ---
t_fails "a second registry on a port in use fails clearly (exit 3)" 3 "port [0-9]+ on 127.0.0.1 is already in use" \
    env SUBSTRATE_STATE="$T/other" "$BIN" registry start
# status and stop from the other state dir say whose registry answers there
t_fails "status from another state dir names the registry on the port: pid and state dir (exit 1)" 1 \
    "not running from this state dir, but a registry answers on $SUBSTRATE_REGISTRY: docker-registry \(pid $pid\) of the state dir $SUBSTRATE_STATE" \
    env SUBSTRATE_STATE="$T/other" "$BIN" registry status
ojs=$(SUBSTRATE_STATE="$T/other" "$BIN" registry status --json)
holder() { $PY -c 'import json,sys; print(json.load(sys.stdin)["port_holder"][sys.argv[1]])' "$1" <<<"$ojs"; }
t_eq "status --json from another state dir: port_holder.pid" "$(holder pid)" "$pid"
t_eq "status --json from another state dir: port_holder.state_dir" "$(holder state_dir)" "$SUBSTRATE_STATE"
t_eq "status --json from another state dir: port_holder.config" "$(holder config)" "$SUBSTRATE_STATE/registry/config.yml"
t_fails "stop from another state dir stops nothing and fails (exit 3), saying what to run" 3 \
    "nothing was stopped: .*docker-registry \(pid $pid\) of the state dir $SUBSTRATE_STATE; to stop it, run .SUBSTRATE_STATE=$SUBSTRATE_STATE substrate registry stop." \
    env SUBSTRATE_STATE="$T/other" "$BIN" registry stop
t_check "  ... and the registry of the first state dir still runs" pid_alive "$pid"
mkdir -p "$T/other2/registry"; echo "$pid" >"$T/other2/registry/registry.pid"
t_fails "stop from a state dir whose pid file names that registry does not signal it (exit 3)" 3 \
    "nothing was stopped: .*pid $pid" env SUBSTRATE_STATE="$T/other2" "$BIN" registry stop
t_check "  ... and it still runs" pid_alive "$pid"

# --- stop ---
t_fails "stop stops it" 0 "registry stopped \(pid $pid\)" "$BIN" registry stop
t_check "the daemon is gone" bash -c "! kill -0 $pid 2>/dev/null || grep -q '^State:[[:space:]]*Z' /proc/$pid/status"
t_check "the pid file is removed" test ! -e "$PIDFILE"
t_fails "status after stop says not running (exit 1)" 1 "not running" "$BIN" registry status
t_eq "status --json after stop: running false" "$("$BIN" registry status --json | json_field running)" False
t_fails "stop again is a no-op" 0 "was not running" "$BIN" registry stop

# --- restart after stop works, then stop it again ---
t_fails "start after stop starts a new daemon" 0 "started at" "$BIN" registry start
t_fails "and it stops" 0 "registry stopped" "$BIN" registry stop

# --- a port held by another program ---
port=$(t_free_port)
$PY -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); print("ready",flush=True); time.sleep(600)' "$port" \
    >"$T/listener.out" 2>&1 &
lpid=$!
t_on_exit "kill $lpid"
for _ in $(seq 50); do grep -q ready "$T/listener.out" && break; sleep 0.1; done
t_fails "start on a port another program listens on fails with exit 3" 3 \
    "port $port on 127.0.0.1 is already in use by another program" \
    env SUBSTRATE_STATE="$T/busy" SUBSTRATE_REGISTRY=127.0.0.1:$port "$BIN" registry start
t_check "the other program was left alone" pid_alive "$lpid"
t_check "no pid file was recorded" test ! -e "$T/busy/registry/registry.pid"
t_fails "status names a program that is not a registry holding the port (pid, command)" 1 \
    "but a program that is not a registry listens on 127.0.0.1:$port: python3 \(pid $lpid: .*python3 -c" \
    env SUBSTRATE_STATE="$T/busy" SUBSTRATE_REGISTRY=127.0.0.1:$port "$BIN" registry status
t_fails "stop with the port held by another program fails (exit 3) and names it" 3 \
    "nothing was stopped: .*python3 \(pid $lpid" \
    env SUBSTRATE_STATE="$T/busy" SUBSTRATE_REGISTRY=127.0.0.1:$port "$BIN" registry stop
t_check "  ... and leaves it alone" pid_alive "$lpid"
kill "$lpid"; wait "$lpid" 2>/dev/null

# --- a stale pid file naming another program: never killed ---
sleep 600 &
spid=$!
t_on_exit "kill $spid"
echo "$spid" >"$PIDFILE"
t_fails "stop with a pid file naming a non-registry process does not signal it" 0 \
    "stale pid file naming pid $spid" "$BIN" registry stop
t_check "the sleep process is still alive" pid_alive "$spid"
t_check "the stale pid file was removed" test ! -e "$PIDFILE"
echo "$spid" >"$PIDFILE"
t_fails "start with such a stale pid file starts a fresh registry" 0 "started at" "$BIN" registry start
t_check "the sleep process is still alive after start" pid_alive "$spid"
newpid=$(cat "$PIDFILE")
t_check "the pid file now names the new docker-registry" grep -q docker-registry "/proc/$newpid/cmdline"
t_fails "status sees the new daemon" 0 "running \(pid $newpid\)" "$BIN" registry status
t_fails "stop stops the new daemon" 0 "registry stopped \(pid $newpid\)" "$BIN" registry stop
t_check "the sleep process survived everything" pid_alive "$spid"
kill "$spid"; wait "$spid" 2>/dev/null
# a pid file naming a process that is gone
echo 999999999 >"$PIDFILE"
t_fails "a pid file naming no process is cleaned up by stop" 0 "not running" "$BIN" registry stop
t_check "and removed" test ! -e "$PIDFILE"

# --- refusals ---
for a in 0.0.0.0:5000 192.168.1.1:5000 example.com:5000; do
    t_fails "refuses to listen on a non-loopback address ($a)" 2 "must listen on loopback" \
        env SUBSTRATE_REGISTRY=$a "$BIN" registry start
done
t_fails "an address without a port is refused" 2 "has no port" env SUBSTRATE_REGISTRY=127.0.0.1 "$BIN" registry start
t_fails "docker-registry missing from PATH: clear error naming the package (exit 3)" 3 \
    "docker-registry is not installed: run .apt-get install docker-registry." \
    env PATH=/nonexistent "$BIN" registry start
t_fails "a missing htpasswd file is an input error" 2 "htpasswd file" \
    "$BIN" registry start --htpasswd "$T/nope"
t_check "nothing is left running" test ! -e "$PIDFILE"

# --- a docker-registry that dies at startup: its log tail is reported ---
mkdir -p "$T/fakebin"
printf '#!/bin/sh\necho "fake registry: storage driver exploded" >&2\nexit 7\n' >"$T/fakebin/docker-registry"
chmod +x "$T/fakebin/docker-registry"
FAKE=(env PATH="$T/fakebin:$PATH" SUBSTRATE_STATE="$T/fake" SUBSTRATE_REGISTRY=127.0.0.1:$(t_free_port))
t_fails "a registry dying at startup fails with exit 3 and its exit status" 3 \
    "docker-registry exited during startup \(status 7\); see $T/fake/registry/registry.log" \
    "${FAKE[@]}" "$BIN" registry start
t_fails "the error shows the tail of its log" 3 "detail: .*registry.log says: fake registry: storage driver exploded" \
    "${FAKE[@]}" "$BIN" registry start
t_check "no pid file is left after a failed start" test ! -e "$T/fake/registry/registry.pid"

t_done

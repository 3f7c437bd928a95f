#!/usr/bin/env bash
# scripts/demo (issue 6 item 8): run end to end on a clone of HEAD, with a
# private state dir and registry port. Its deliberate refusal is announced
# as expected before it prints, and its closing lines say what to try next,
# with the environment it used.
. "$(dirname "$0")/../lib.sh"

git clone -q "$TOP" "$T/repo"
port=$(t_free_port)
export SUBSTRATE_REGISTRY=127.0.0.1:$port
t_on_exit "'$BIN' registry stop"
t_on_exit "'$BIN' supervise --stop >/dev/null 2>&1"
t_on_exit "'$BIN' stop hello >/dev/null 2>&1"
t_on_exit "'$BIN' stop agent >/dev/null 2>&1"
export DEMO_PORT=$(t_free_port)
export DEMO_AGENT_PORT=$(t_free_port)
DEMO_SKIP_SETUP=1 SUBSTRATE_BIN=$BIN sh "$T/repo/scripts/demo" >"$T/demo.out" 2>&1; rc=$?
t_eq "the demo runs to the end (exit 0)" "$rc" 0
[ "$rc" = 0 ] || t_diag "$(tail -20 "$T/demo.out")"
exp=$(grep -n '^Expected: the next command REFUSES the image' "$T/demo.out" | cut -d: -f1)
err=$(grep -n '^substrate verify: error: no trusted key matched' "$T/demo.out" | cut -d: -f1)
if [ -n "$exp" ] && [ -n "$err" ] && [ "$exp" -lt "$err" ]; then
    t_ok "the deliberate refusal is announced as expected before it prints"
else t_not_ok "the deliberate refusal is announced as expected before it prints"; t_diag "$(cat "$T/demo.out")"; fi
# Tier-1: reconciled, ALIGNED, DRIFT on tamper, promoted and rolled back
t_eq "the demo's service answered on its port" "$(grep -c "^GET http://127.0.0.1:$DEMO_PORT/healthz -> ok" "$T/demo.out")" 1
t_eq "align said ALIGNED (4 times) and DRIFT once" "$(grep -c '^ALIGNED hello$' "$T/demo.out") $(grep -c '^DRIFT hello$' "$T/demo.out")" "4 1"
t_eq "the DRIFT named the tampered file" "$(grep -c 'usr/bin/hello changed' "$T/demo.out")" 1
t_eq "it promoted and rolled back" "$(grep -c ': promoted sha256:' "$T/demo.out")" 2
# Tier-2: the reference jobspec, pinned and signed, ran: output, a blocked probe, zero residue
t_eq "the reference job ran: its greeting, its blocked probe, residual 0" \
    "$(grep -c '^hello from the guest$' "$T/demo.out") $(grep -c '^  egress 192.0.2.1:80: blocked (guest: unreachable ENETUNREACH; host: none)' "$T/demo.out") $(grep -c '^  teardown: [0-9]* checks, residual 0' "$T/demo.out")" "1 1 1"
REF=$T/repo/platform/sandbox/jobspec.example.json
t_eq "the agent escalated its three snippets: the greeting, the blocked probes, the runaway killed (124)" \
    "$(grep -c '^  | hello from an escalated microVM$' "$T/demo.out") $(grep -c '^  | {"probe":"tcp","target":"10.0.2.2:[0-9]*","result":"unreachable"' "$T/demo.out") $(grep -c '^  | {"probe":"tcp","target":"127.0.0.1:[0-9]*","result":"refused"' "$T/demo.out") $(grep -c '^  authorization: manifest-policy; outcome timed_out, exit code 124' "$T/demo.out")" "1 1 1 1"
t_eq "  each with its origin and a teardown of residual 0" \
    "$(grep -c '^  origin: service agent, image sha256:[0-9a-f]\{64\}, manifest sha256:' "$T/demo.out") $(grep -c '^  teardown audit: [0-9]* checks, residual 0; report ' "$T/demo.out")" "3 3"
t_check "the reference jobspec is pinned and signed; it verifies with the trust store" "$BIN" verify-blob "$REF"
t_check "after the demo, sandbox-runner runs the reference jobspec (exit 0)" \
    env SUBSTRATE_BIN="$BIN" "$T/repo/platform/sandbox/sandbox-runner" -q "$REF"
tail -17 "$T/demo.out" >"$T/tail"
if grep -qx "  export SUBSTRATE_STATE=$SUBSTRATE_STATE SUBSTRATE_REGISTRY=$SUBSTRATE_REGISTRY" "$T/tail" &&
   grep -q "^With that environment, try next:" "$T/tail" &&
   grep -Eq "^  $BIN verify $SUBSTRATE_REGISTRY/hello@sha256:[0-9a-f]{64} --provenance --json$" "$T/tail" &&
   grep -q "stop it with: $BIN registry stop$" "$T/tail"; then
    t_ok "the closing lines say what to try next, with the environment used"
else t_not_ok "the closing lines say what to try next, with the environment used"; t_diag "$(cat "$T/tail")"; fi
# the pin is the tree's only change; a second demo restores it, builds and pins again
t_eq "the pin is the only change in the tree" "$(git -C "$T/repo" status --porcelain)" " M platform/sandbox/jobspec.example.json"
DEMO_SKIP_SETUP=1 SUBSTRATE_BIN=$BIN sh "$T/repo/scripts/demo" >"$T/demo2.out" 2>&1; rc=$?
t_eq "a second demo restores the placeholder first and runs to the end" \
    "$rc $(grep -c '^(restoring the placeholder digest' "$T/demo2.out")" "0 1"
[ "$rc" = 0 ] || t_diag "$(tail -20 "$T/demo2.out")"
t_done

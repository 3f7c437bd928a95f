#!/usr/bin/env bash
# Interrupted work leaves no residue (issue 6 item 3): SIGINT/SIGTERM in the
# middle of a pull (held mid-blob by a stalling loopback proxy in front of a
# real docker-registry), of a build and of a build-sign-push remove their
# temporaries and stop their children; the leftovers of a process that was
# killed (SIGKILL) are swept by the next run once their pid is gone, while
# those of a live process are kept. `umoci gc` must succeed on the layout.
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
TOOLS=$TOP/tests/tools
wait_for() { # seconds cmd...: poll until cmd succeeds
    local n=$(( $1 * 10 )); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
parts() { find "$1" -name '*.part-*' 2>/dev/null; }
has_partial() { # a .part file with some bytes in it
    local f
    for f in $(parts "$1"); do [ -s "$f" ] && return 0; done
    return 1
}
# Run "$@" in the background; its pid in $BGPID (stopped on exit). A
# background job of a script starts with SIGINT ignored (and Substrate keeps
# an ignored signal ignored, as nohup expects): give it the default back.
bg() { env --default-signal=INT "$@" >"$T/bg.out" 2>"$T/bg.err" & BGPID=$!; t_on_exit "kill -9 $BGPID"; }
# Send SIG to $BGPID, wait for it; its status in $RC.
interrupt() { kill -"$1" "$BGPID"; wait "$BGPID"; RC=$?; }

# ---- an image with a 4 MiB incompressible layer, pushed to a real registry ----
L=$T/L
umoci init --layout "$L" >/dev/null 2>&1 && umoci new --image "$L:t" >/dev/null 2>&1 &&
    umoci unpack --image "$L:t" "$T/bundle" >/dev/null 2>&1 &&
    head -c 4194304 /dev/urandom >"$T/bundle/rootfs/random.bin" &&
    umoci repack --image "$L:t" "$T/bundle" >/dev/null 2>&1 ||
    { echo "Bail out! cannot build the test image with umoci"; exit 1; }
t_registry
REG=$SUBSTRATE_REGISTRY
"$BIN" push --oci "$L:t" test/big:v1 >/dev/null 2>"$T/push.err" ||
    { echo "Bail out! push failed: $(cat "$T/push.err")"; exit 1; }

# The proxy forwards 1 MiB of answers per connection, then holds it.
$PY "$TOOLS/stall-proxy.py" --target "${REG##*:}" --after 1048576 --port-file "$T/stall.port" &
t_on_exit "kill $!"
wait_for 10 test -s "$T/stall.port" || { echo "Bail out! stall proxy did not start"; exit 1; }
STALL=127.0.0.1:$(cat "$T/stall.port")

for sig in INT TERM; do
    D=$T/pull-$sig
    bg "$BIN" pull "$STALL/test/big:v1" --oci "$D:big"
    if wait_for 20 has_partial "$D"; then
        t_ok "SIG$sig: the pull is held mid-blob with a partial file ($(parts "$D" | head -1 | xargs basename))"
    else
        t_not_ok "SIG$sig: the pull is held mid-blob with a partial file"; t_diag "$(cat "$T/bg.err")"
    fi
    interrupt "$sig"; rc=$RC
    want=$(( 128 + $(kill -l "$sig") ))
    t_eq "SIG$sig: the pull dies of the signal (status $want)" "$rc" "$want"
    t_eq "SIG$sig: no partial download is left in the layout" "$(parts "$D")" ""
    out=$("$BIN" pull "$REG/test/big:v1" --oci "$D:big" 2>&1) && t_ok "SIG$sig: the next pull succeeds" ||
        { t_not_ok "SIG$sig: the next pull succeeds"; t_diag "$out"; }
    out=$(umoci gc --layout "$D" 2>&1) && t_ok "SIG$sig: umoci gc succeeds on the layout" ||
        { t_not_ok "SIG$sig: umoci gc succeeds on the layout"; t_diag "$out"; }
    out=$(umoci unpack --image "$D:big" "$T/unpacked-$sig" 2>&1) &&
        cmp -s "$T/bundle/rootfs/random.bin" "$T/unpacked-$sig/rootfs/random.bin" &&
        t_ok "SIG$sig: umoci unpacks the pulled image intact" ||
        { t_not_ok "SIG$sig: umoci unpacks the pulled image intact"; t_diag "$out"; }
done

# ---- SIGKILL: nothing runs; the next pull sweeps what a dead pid left ----
D=$T/pull-KILL
bg "$BIN" pull "$STALL/test/big:v1" --oci "$D:big"
wait_for 20 has_partial "$D"
kill -9 "$BGPID"; wait "$BGPID" 2>/dev/null
dead_part=$(parts "$D" | head -1)
[ -n "$dead_part" ] && t_ok "SIGKILL leaves a partial file named with the dead pid ($(basename "$dead_part"))" ||
    t_not_ok "SIGKILL leaves a partial file named with the dead pid"
# a live process's partial file (a concurrent pull) must be kept
sleep 300 & live=$!
t_on_exit "kill $live"
live_part=$D/blobs/sha256/$(printf '%064d' 7).part-$live-abcdef
live_tmp=$D/index.json.tmp-$live-abcdef
dead_tmp=$D/index.json.tmp-$((BGPID))-abcdef
users=$D/notes.tmp-$((BGPID))-abcdef # not ours: a layout dir may hold the user's files
echo partial >"$live_part"; echo x >"$live_tmp"; echo x >"$dead_tmp"; echo x >"$users"
out=$("$BIN" pull "$REG/test/big:v1" --oci "$D:big" 2>&1) || t_diag "$out"
[ -n "$dead_part" ] && [ ! -e "$dead_part" ] && [ ! -e "$dead_tmp" ] &&
    t_ok "the next pull removes the leftovers of the dead pid" ||
    { t_not_ok "the next pull removes the leftovers of the dead pid"; t_diag "$(ls -la "$D" "$D/blobs/sha256")"; }
[ -e "$live_part" ] && [ -e "$live_tmp" ] && t_ok "... and keeps those of a live process" ||
    t_not_ok "... and keeps those of a live process"
[ -e "$users" ] && t_ok "... and a file of the user's in the layout dir" ||
    t_not_ok "... and a file of the user's in the layout dir"
rm -f "$users"
rm -f "$live_part" "$live_tmp"
out=$(umoci gc --layout "$D" 2>&1) && t_ok "umoci gc succeeds after the sweep" ||
    { t_not_ok "umoci gc succeeds after the sweep"; t_diag "$out"; }

# ---- build and build-sign-push, interrupted while the build command runs ----
git clone -q "$TOP" "$T/repo"
R=$T/repo
git -C "$R" rm -rqf platform/images
mkdir -p "$R/platform/images/sleepy"
cat >"$R/platform/images/sleepy/image.json" <<'EOF'
{"name": "sleepy", "build": ["sh", "-c", "echo $$ > started; exec sleep 300"],
 "dirs": [{"path": "/data", "mode": "0755"}]}
EOF
git -C "$R" add -A && git -C "$R" -c user.name=t -c user.email=t@t commit -qm "a slow image"
SHA=$(git -C "$R" rev-parse HEAD)
started() { ls "$SUBSTRATE_STATE"/tmp/$1/src/started "$SUBSTRATE_STATE"/tmp/$1/*/*/src/started \
    "$SUBSTRATE_STATE"/tmp/$1/*/*/*/*/*/src/started 2>/dev/null | head -1; }
has_started() { [ -n "$(started "$1")" ]; }
check_interrupted() { # what glob sig
    local what=$1 glob=$2 sig=$3 f child rc want
    if wait_for 60 has_started "$glob"; then
        f=$(started "$glob"); child=$(cat "$f")
        t_ok "$what: interrupted while its build command runs ($(basename "$(dirname "$(dirname "$f")")"))"
    else
        t_not_ok "$what: its build command started"; t_diag "$(cat "$T/bg.err")"; child=
    fi
    interrupt "$sig"; rc=$RC
    want=$(( 128 + $(kill -l "$sig") ))
    t_eq "$what, SIG$sig: dies of the signal (status $want)" "$rc" "$want"
    t_eq "$what, SIG$sig: nothing is left under \$SUBSTRATE_STATE/tmp" "$(ls -A "$SUBSTRATE_STATE/tmp" 2>&1)" ""
    if [ -n "$child" ] && ! kill -0 "$child" 2>/dev/null; then t_ok "$what, SIG$sig: its build command was stopped"
    else t_not_ok "$what, SIG$sig: its build command was stopped"; [ -n "$child" ] && kill -9 "$child"; fi
}
bg "$BIN" build --repo "$R" sleepy --version 1 --rev "$SHA" --no-push
check_interrupted build 'build-*' INT
bg "$BIN" build --repo "$R" sleepy --version 1 --rev "$SHA" --no-push
check_interrupted build 'build-*' TERM
bg "$BIN" build-sign-push 1.0.0 --repo "$R" --single-build
check_interrupted build-sign-push 'release-*' TERM

# stale export dirs: a dead pid's are swept by the next build, a live one's kept
mkdir -p "$SUBSTRATE_STATE/tmp"
for d in build-$BGPID-aaaaaa release-$BGPID-bbbbbb build-$live-cccccc release-$live-dddddd; do
    mkdir -p "$SUBSTRATE_STATE/tmp/$d/src/x"; echo x >"$SUBSTRATE_STATE/tmp/$d/src/x/f"
done
git -C "$R" rm -rqf platform/images/sleepy
mkdir -p "$R/platform/images/quick"
echo '{"name": "quick", "dirs": [{"path": "/data", "mode": "0755"}]}' >"$R/platform/images/quick/image.json"
git -C "$R" add -A && git -C "$R" -c user.name=t -c user.email=t@t commit -qm "a quick image"
out=$("$BIN" build --repo "$R" quick --version 1 --no-push -q 2>&1) || t_diag "$out"
sorted() { printf '%s\n' "$@" | LC_ALL=C sort | tr '\n' ' '; }
left=$(sorted $(ls "$SUBSTRATE_STATE/tmp"))
t_eq "the next build sweeps the dead pid's export, keeps the live one's" "$left" \
    "$(sorted "build-$live-cccccc" "release-$BGPID-bbbbbb" "release-$live-dddddd")"
out=$("$BIN" build-sign-push 1.0.1 --repo "$R" --single-build -q 2>&1) || t_diag "$out"
left=$(sorted $(ls "$SUBSTRATE_STATE/tmp"))
t_eq "the next build-sign-push sweeps the dead pid's release dir, keeps the live one's" "$left" \
    "$(sorted "build-$live-cccccc" "release-$live-dddddd")"

t_done

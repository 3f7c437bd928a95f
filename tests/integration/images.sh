#!/usr/bin/env bash
# The image programs: hello, probe and agent build reproducibly from two different
# export directories (as the image builder runs them), leak no build path,
# and hello and probe behave as specified on loopback (the agent's behaviour:
# agent-image.sh).
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
VER=9.8.7-test
REV=0123456789abcdef0123456789abcdef01234567
EPOCH=1700000000

# An export of the image sources, like the builder's `git archive` export:
# the files git tracks under platform/images (so a file that was never
# committed is missing here too), taken from the working tree.
export_to() {
    local dst=$1 f
    mkdir -p "$dst"
    if git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$TOP" && git ls-files -z -- platform/images) |
            while IFS= read -r -d '' f; do
                [ -e "$TOP/$f" ] || continue
                mkdir -p "$dst/$(dirname "$f")" && cp -p "$TOP/$f" "$dst/$f"
            done
    else
        mkdir -p "$dst/platform" && cp -a "$TOP/platform/images" "$dst/platform/"
    fi
}

# build ROOT IMAGE OUT: run the image's Makefile the way the builder does.
build() {
    local root=$1 img=$2 out=$3
    mkdir -p "$out"
    (umask 022 && cd "$root" && env -i PATH=/usr/local/bin:/usr/bin:/bin OUT="$out" \
        SOURCE_DATE_EPOCH=$EPOCH SUBSTRATE_VERSION=$VER SUBSTRATE_REVISION=$REV TZ=UTC LC_ALL=C \
        make -s -f "platform/images/$img/Makefile")
}

A=$T/a
B=$T/b/a/much/longer/path/to/another-export
export_to "$A"
export_to "$B"
for img in hello job agent; do
    case $img in job) prog=probe ;; *) prog=$img ;; esac
    t_check "$img: builds in export A" build "$A" $img "$T/out-a"
    t_check "$img: builds in export B" build "$B" $img "$T/out-b/x"
    t_check "$img: $prog is byte-identical from both exports" cmp "$T/out-a/$prog" "$T/out-b/x/$prog"
    leak=0
    for p in "$A" "$B" "$T"; do
        grep -aqF "$p" "$T/out-a/$prog" "$T/out-b/x/$prog" && leak=1
    done
    t_eq "$img: no export path in the binary" "$leak" 0
    if command -v readelf >/dev/null 2>&1; then
        t_eq "$img: statically linked (no program interpreter)" \
            "$(readelf -lW "$T/out-a/$prog" | grep -c 'INTERP')" 0
    else
        t_skip "$img: statically linked" "readelf not installed"
    fi
done
# the version really comes from the environment: another revision, other bytes
t_check "a different SUBSTRATE_REVISION builds" \
    bash -c "cd '$A' && env -i PATH=/usr/bin:/bin OUT='$T/out-c' SUBSTRATE_VERSION=$VER SUBSTRATE_REVISION=fedcba make -s -f platform/images/hello/Makefile"
t_fails "...and gives a different binary" 1 "differ" cmp "$T/out-a/hello" "$T/out-c/hello"
t_fails "a version with shell metacharacters is refused" 2 "may only contain" \
    bash -c "cd '$A' && env -i PATH=/usr/bin:/bin OUT='$T/out-d' SUBSTRATE_VERSION='1;id' make -s -f platform/images/hello/Makefile"
t_fails "OUT is required" 2 "OUT is not set" make -s -C "$A" -f platform/images/hello/Makefile

HELLO=$T/out-a/hello
PROBE=$T/out-a/probe
t_eq "hello --version names version and revision" "$("$HELLO" --version)" "hello $VER (revision $REV)"
t_eq "probe version names version and revision" "$("$PROBE" version)" "probe $VER (revision $REV)"
t_check "hello --help documents the routes" bash -c "'$HELLO' --help | grep -q /healthz"
t_fails "hello refuses a non-numeric listen address" 2 "bad listen address" "$HELLO" --listen localhost:80

# ---- hello on loopback ----
port=$(t_free_port)
hello_pid=
t_on_exit '[ -n "$hello_pid" ] && kill "$hello_pid"'
"$HELLO" --listen "127.0.0.1:$port" 2>"$T/hello.log" &
hello_pid=$!
U=http://127.0.0.1:$port
CURL=(curl -s --noproxy '*' --max-time 5)
ready=0
for _ in $(seq 50); do
    if [ "$("${CURL[@]}" "$U/readyz" 2>/dev/null)" = ready ]; then ready=1; break; fi
    sleep 0.1
done
t_eq "hello becomes ready on 127.0.0.1:$port" "$ready" 1

# req NAME CURL-ARGS...: writes $T/NAME.{code,body,hdr}
req() {
    local n=$1; shift
    "${CURL[@]}" -D "$T/$n.hdr" -o "$T/$n.body" -w '%{http_code}' "$@" >"$T/$n.code" 2>/dev/null
}
req root "$U/"
t_eq "GET / is 200" "$(cat "$T/root.code")" 200
t_eq "GET / names the version and revision" "$(cat "$T/root.body")" "hello from substrate $VER (revision $REV)"
t_check "responses say Connection: close" grep -qi '^connection: close' "$T/root.hdr"
req health "$U/healthz"
t_eq "GET /healthz is 200 ok" "$(cat "$T/health.code") $(cat "$T/health.body")" "200 ok"
req ready "$U/readyz"
t_eq "GET /readyz is 200 ready" "$(cat "$T/ready.code") $(cat "$T/ready.body")" "200 ready"
# HEAD over a raw socket: everything after the header block must be empty
$PY - "$port" >"$T/head.raw" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode(), len(body))
print("\n".join(l.decode().lower() for l in head.split(b"\r\n")[1:]))
EOF
t_eq "HEAD /healthz is 200 with no body" "$(head -1 "$T/head.raw")" "HTTP/1.1 200 OK 0"
t_check "HEAD carries the GET length" grep -q '^content-length: 3' "$T/head.raw"
req nf "$U/no/such/path"
t_eq "unknown path is 404" "$(cat "$T/nf.code")" 404
req post -X POST --data 'x=1' "$U/"
t_eq "POST is 405" "$(cat "$T/post.code")" 405
t_check "405 names the allowed methods" grep -qi '^allow: GET, HEAD' "$T/post.hdr"
req del -X DELETE "$U/healthz"
t_eq "DELETE is 405" "$(cat "$T/del.code")" 405
big=$($PY -c 'print("a" * 10000)')
req big "$U/$big"
t_eq "an oversized request is refused (431)" "$(cat "$T/big.code")" 431

# ---- probe against loopback ----
out=$("$PROBE" tcp "127.0.0.1:$port" --timeout-ms 2000); rc=$?
t_eq "probe: listening port -> exit 0" "$rc" 0
t_eq "probe: listening port -> connected" \
    "$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["probe"], d["target"], d["result"], d["errno"])' "$out")" \
    "tcp 127.0.0.1:$port connected 0"
closed=$(t_free_port)
out=$("$PROBE" tcp "127.0.0.1:$closed" --timeout-ms 2000); rc=$?
t_eq "probe: closed port -> exit 1" "$rc" 1
t_eq "probe: closed port -> refused, ECONNREFUSED" \
    "$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["result"], d["errno"], bool(d["detail"]))' "$out")" \
    "refused 111 True"
t_fails "probe: host names are a usage error (no DNS)" 2 "numeric" "$PROBE" tcp localhost:80
t_fails "probe: bad timeout is a usage error" 2 "timeout-ms" "$PROBE" tcp "127.0.0.1:$closed" --timeout-ms 0
t_fails "probe: unknown probe is a usage error" 2 "unknown probe" "$PROBE" udp "127.0.0.1:$closed"
# a listener whose accept queue is full drops SYNs: the connect times out
t_check "probe: a full accept queue -> timeout, exit 1" $PY - "$PROBE" <<'EOF'
import json, socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
r = subprocess.run([sys.argv[1], "tcp", f"127.0.0.1:{port}", "--timeout-ms", "300"],
                   capture_output=True, text=True, timeout=10)
d = json.loads(r.stdout)
ok = r.returncode == 1 and d["result"] == "timeout" and d["errno"] == 110
print(r.returncode, r.stdout)
sys.exit(0 if ok else 1)
EOF

# ---- logs and SIGTERM ----
t_check "hello logged one line per request" grep -q "\"GET /healthz HTTP/1.1\" 200 3" "$T/hello.log"
missing=
for want in '"GET / HTTP/1.1" 200 ' '"GET /readyz HTTP/1.1" 200 6' '"HEAD /healthz HTTP/1.1" 200 0' \
    '"GET /no/such/path HTTP/1.1" 404 ' '"POST / HTTP/1.1" 405 ' '"DELETE /healthz HTTP/1.1" 405 ' '" 431 '; do
    grep -qF -- "$want" "$T/hello.log" || missing="$missing [$want]"
done
t_eq "hello logged every kind of request with its status" "$missing" ""
# SIGTERM (by pid) while a request is half sent: the listener closes at once,
# the request in flight is still answered, then hello exits 0
$PY - "$port" "$hello_pid" >"$T/drain.out" 2>&1 <<'EOF'
import os, signal, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\n")
time.sleep(0.3)
os.kill(pid, signal.SIGTERM)
time.sleep(0.3)
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    print("new connection accepted")
except ConnectionRefusedError:
    print("new connection refused")
s.sendall(b"Host: x\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
EOF
t_eq "SIGTERM: stops accepting but answers the request in flight" "$(cat "$T/drain.out")" \
    "new connection refused
HTTP/1.1 200 OK"
rc=timeout
for _ in $(seq 50); do
    if ! kill -0 "$hello_pid" 2>/dev/null; then wait "$hello_pid"; rc=$?; break; fi
    sleep 0.1
done
[ "$rc" != timeout ] && hello_pid=
t_eq "SIGTERM: hello exits 0" "$rc" 0
t_check "SIGTERM: hello logs its shutdown" grep -q "received SIGTERM" "$T/hello.log"
t_check "SIGTERM: hello says it shut down cleanly" grep -q "shut down cleanly" "$T/hello.log"
t_fails "after SIGTERM nothing listens on the port" 1 "refused" "$PROBE" tcp "127.0.0.1:$port" --timeout-ms 1000

t_done

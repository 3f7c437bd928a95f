#!/usr/bin/env bash
# The reference agent image's program (platform/images/agent), built with its
# image Makefile and run on loopback against a fake escalation server (a small
# C program built here) on a Unix socket: the snippet reaches the socket as a
# correctly escaped job request, replies are relayed unchanged, readiness
# follows the socket, health probes are answered while a job runs, a client
# that goes away makes the agent close the escalation connection, and bad
# requests are refused with the right status. (The end-to-end test against the
# real supervisor is separate.)
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
command -v cc >/dev/null 2>&1 || { echo "Bail out! no C compiler (cc)"; exit 1; }

OUT=$T/out
t_check "agent builds with its image Makefile" \
    bash -c "cd '$TOP' && env -i PATH=/usr/local/bin:/usr/bin:/bin OUT='$OUT' SUBSTRATE_VERSION=1.2.3 \
        SUBSTRATE_REVISION=abc make -s -f platform/images/agent/Makefile"
AGENT=$OUT/agent
[ -x "$AGENT" ] || { echo "Bail out! the agent did not build"; exit 1; }
t_eq "agent --version names version and revision" "$("$AGENT" --version)" "agent 1.2.3 (revision abc)"
t_check "agent --help documents the routes" bash -c "'$AGENT' --help | grep -q 'POST /run'"
t_fails "agent refuses a non-numeric listen address" 2 "bad listen address" "$AGENT" --listen localhost:80
t_fails "agent refuses an escalation socket path too long for a Unix socket" 2 "longer than" \
    "$AGENT" --listen 127.0.0.1:0 --escalate-socket "/$(printf 'x%.0s' $(seq 120))"

# ---- the fake escalation server ---------------------------------------------
# fake-esc SOCKET DIR: per connection (forked), records the request it got in
# DIR/req.N, then answers as DIR/mode says: 200 | 403 | noclen (200 without
# Content-Length, closed after the body) | 429 (with Retry-After) | garbage (not HTTP) | close (closes
# without a reply) | delay (200 after 3 s) | hang (no reply). While it waits (delay, hang) it watches the connection: EOF or a
# hang-up from the agent is written to DIR/eof.N.
cat >"$T/fake-esc.c" <<'EOF'
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *dir;

static void note(const char *name, int n, const char *data, size_t len) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.%d", dir, name, n);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) exit(1);
    fwrite(data, 1, len, f);
    fclose(f);
    rename(tmp, path);
}

/* wait up to ms for the peer to close: 1 when it did */
static int watch_eof(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    while (poll(&p, 1, ms) > 0) {
        char c;
        if ((p.revents & (POLLHUP | POLLERR | POLLRDHUP)) || recv(fd, &c, 1, MSG_DONTWAIT) <= 0) return 1;
    }
    return 0;
}

static void serve(int fd, int n) {
    static char buf[1 << 20];
    size_t len = 0, want = (size_t)-1;
    while (len < sizeof buf && len < want) {
        ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
        char *end = memmem(buf, len, "\r\n\r\n", 4);
        if (end && want == (size_t)-1) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            want = (size_t)(end - buf) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
    note("req", n, buf, len);
    char mode[32] = "200";
    char path[4096];
    snprintf(path, sizeof path, "%s/mode", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%31s", mode) != 1) strcpy(mode, "200");
        fclose(f);
    }
    const char *ok = "{\"exit_code\": 0, \"outcome\": \"exited\", \"stdout\": \"hi\\n\"}\n";
    const char *denied = "{\"error\": \"egress to 192.0.2.1:80 is not allowed\", \"reason\": \"egress_denied\"}\n";
    const char *busy = "{\"error\": \"the queue is full\", \"reason\": \"queue_full\"}\n";
    const char *late = "{\"exit_code\": 0, \"outcome\": \"exited\", \"stdout\": \"late\\n\"}\n";
    char out[2048];
    int m = 0;
    if (!strcmp(mode, "403")) {
        m = snprintf(out, sizeof out, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(denied), denied);
    } else if (!strcmp(mode, "noclen")) {
        m = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n\r\n%s", ok);
    } else if (!strcmp(mode, "429")) {
        m = snprintf(out, sizeof out, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                     "Retry-After: 7\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(busy), busy);
    } else if (!strcmp(mode, "garbage")) {
        m = snprintf(out, sizeof out, "SSH-2.0-nope\r\n\r\n");
    } else if (!strcmp(mode, "close")) {
        return;
    } else if (!strcmp(mode, "delay") || !strcmp(mode, "hang")) {
        if (watch_eof(fd, !strcmp(mode, "delay") ? 3000 : 20000)) {
            note("eof", n, "eof\n", 4);
            return;
        }
        if (!strcmp(mode, "hang")) return;
        m = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(late), late);
    } else {
        m = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(ok), ok);
    }
    send(fd, out, (size_t)m, MSG_NOSIGNAL);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    dir = argv[2];
    signal(SIGCHLD, SIG_IGN);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 16) < 0) { perror("bind"); return 1; }
    for (int n = 1;; n++) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0) continue;
        if (fork() == 0) {
            close(l);
            serve(fd, n);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
}
EOF
t_check "the fake escalation server builds" cc -O2 -Wall -Werror -o "$T/fake-esc" "$T/fake-esc.c"

# ---- the agent, before the escalation socket exists -----------------------------
E=$T/esc
mkdir -p "$E"
SOCK=$E/escalate.sock
port=$(t_free_port)
agent_pid='' fake_pid=''
t_on_exit '[ -n "$agent_pid" ] && kill "$agent_pid"'
t_on_exit '[ -n "$fake_pid" ] && kill -- "-$fake_pid"'
"$AGENT" --listen "127.0.0.1:$port" --escalate-socket "$SOCK" 2>"$T/agent.log" &
agent_pid=$!
U=http://127.0.0.1:$port
CURL=(curl -s --noproxy '*' --max-time 10)
up=0
for _ in $(seq 50); do
    [ "$("${CURL[@]}" "$U/healthz" 2>/dev/null)" = ok ] && { up=1; break; }
    sleep 0.1
done
t_eq "agent answers /healthz on 127.0.0.1:$port" "$up" 1

# req NAME CURL-ARGS...: writes $T/NAME.{code,body,hdr}
req() {
    local n=$1; shift
    "${CURL[@]}" -D "$T/$n.hdr" -o "$T/$n.body" -w '%{http_code}' "$@" >"$T/$n.code" 2>/dev/null
}
# jfield NAME KEY: a key of the JSON body $T/NAME.body
jfield() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/$1.body" "$2" 2>&1; }

req nr "$U/readyz"
t_eq "/readyz without the socket is 503" "$(cat "$T/nr.code")" 503
t_eq "...with a one-line reason naming the socket" "$(cat "$T/nr.body")" "not ready: no escalation socket at $SOCK"
printf 'echo hi' >"$T/hi.sh"
req nosock --data-binary @"$T/hi.sh" "$U/run"
t_eq "POST /run without the socket is 503" "$(cat "$T/nosock.code")" 503
t_eq "...reason no_escalation" "$(jfield nosock reason)" no_escalation
t_eq "...and says the manifest has no escalate: policy" "$(jfield nosock error)" \
    "no escalation socket at $SOCK: the service's manifest has no escalate: policy"

# ---- with the fake escalation server --------------------------------------------
setsid "$T/fake-esc" "$SOCK" "$E" 2>"$T/fake.log" &
fake_pid=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
req ready "$U/readyz"
t_eq "/readyz with the socket is 200 ready" "$(cat "$T/ready.code") $(cat "$T/ready.body")" "200 ready"

# the newest request the fake server recorded (the highest N of req.N)
last_req() {
    local f n max=0
    for f in "$E"/req.*; do
        n=${f##*.}
        [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt "$max" ] && max=$n
    done
    echo "$E/req.$max"
}

# a snippet with quotes, backslashes, newline, tab, a control byte and UTF-8
printf 'echo "a \\"quoted\\" word" '"'"'back\\slash'"'"'\nprintf "caf\xc3\xa9\t\x01 \xe2\x82\xac\\n"\n' >"$T/snippet.sh"
echo 200 >"$E/mode"
req run --data-binary @"$T/snippet.sh" "$U/run"
t_eq "POST /run relays the job's 200" "$(cat "$T/run.code")" 200
t_eq "...and its body, byte for byte" "$(cat "$T/run.body")" '{"exit_code": 0, "outcome": "exited", "stdout": "hi\n"}'
t_check "...as application/json" grep -qi '^content-type: application/json' "$T/run.hdr"
check_request() { # FILE SNIPPET-FILE [TIMEOUT]
    $PY - "$@" <<'PYEOF'
import json, sys
raw = open(sys.argv[1], "rb").read()
want = open(sys.argv[2], "rb").read().decode("utf-8")
head, _, body = raw.partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
hdr = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
errs = []
if lines[0] != "POST /v1/jobs HTTP/1.1": errs.append("request line %r" % lines[0])
if hdr.get("host") != "substrate": errs.append("host %r" % hdr.get("host"))
if hdr.get("content-type") != "application/json": errs.append("content-type %r" % hdr.get("content-type"))
if hdr.get("connection", "").lower() != "close": errs.append("connection %r" % hdr.get("connection"))
if hdr.get("content-length") != str(len(body)): errs.append("content-length %r for %d bytes" % (hdr.get("content-length"), len(body)))
d = json.loads(body.decode("utf-8"))
if d.get("command") != ["/bin/sh", "-c"]: errs.append("command %r" % d.get("command"))
if d.get("args") != [want]: errs.append("args %r, want %r" % (d.get("args"), [want]))
if len(sys.argv) > 3:
    if d.get("timeout") != int(sys.argv[3]) or type(d.get("timeout")) is not int: errs.append("timeout %r" % d.get("timeout"))
elif "timeout" in d: errs.append("unexpected timeout %r" % d["timeout"])
if set(d) - {"command", "args", "timeout"}: errs.append("extra keys %r" % sorted(set(d)))
for ch in "é€":
    if ch.encode() in want.encode() and ch.encode() not in body: errs.append("%s not passed through as UTF-8" % ch)
if b"\\u0001" not in body: errs.append("control byte not escaped as \\u0001")
print("\n".join(errs) or "ok")
sys.exit(1 if errs else 0)
PYEOF
}
t_check "the snippet reaches the socket as {command, args} with quotes, backslash, newline, tab, control and UTF-8 intact" \
    check_request "$(last_req)" "$T/snippet.sh"
req tmo --data-binary @"$T/snippet.sh" "$U/run?timeout=7"
t_check "?timeout=7 adds \"timeout\": 7 to the job" check_request "$(last_req)" "$T/snippet.sh" 7
n_before=$(ls "$E"/req.* | wc -l)
req badtmo --data-binary @"$T/hi.sh" "$U/run?timeout=7s"
t_eq "?timeout=7s is refused (400)" "$(cat "$T/badtmo.code") $(jfield badtmo reason)" "400 bad_request"
req badq --data-binary @"$T/hi.sh" "$U/run?image=x"
t_eq "an unknown query parameter is refused (400)" "$(cat "$T/badq.code")" 400
t_eq "...naming it" "$(jfield badq error)" 'unknown query parameter "image": /run takes only ?timeout=N'

echo 403 >"$E/mode"
req deny --data-binary @"$T/hi.sh" "$U/run"
t_eq "a refusal (403) is relayed with its status" "$(cat "$T/deny.code")" 403
t_eq "...and its body unchanged" "$(cat "$T/deny.body")" \
    '{"error": "egress to 192.0.2.1:80 is not allowed", "reason": "egress_denied"}'
echo 429 >"$E/mode"
req busy --data-binary @"$T/hi.sh" "$U/run"
t_eq "a 429 is relayed with its body" "$(cat "$T/busy.code") $(jfield busy reason)" "429 queue_full"
t_check "...and its Retry-After" grep -qi '^retry-after: 7' "$T/busy.hdr"
echo noclen >"$E/mode"
req noclen --data-binary @"$T/hi.sh" "$U/run"
t_eq "a reply without Content-Length is relayed to its end (EOF)" "$(cat "$T/noclen.code") $(cat "$T/noclen.body")" \
    '200 {"exit_code": 0, "outcome": "exited", "stdout": "hi\n"}'

echo garbage >"$E/mode"
req garbage --data-binary @"$T/hi.sh" "$U/run"
t_eq "a reply that is not HTTP is 502 bad_escalation_reply" "$(cat "$T/garbage.code") $(jfield garbage reason)" \
    "502 bad_escalation_reply"
echo close >"$E/mode"
req closed --data-binary @"$T/hi.sh" "$U/run"
t_eq "a connection closed without a reply is 502 bad_escalation_reply" \
    "$(cat "$T/closed.code") $(jfield closed reason)" "502 bad_escalation_reply"

# ---- refusals before anything is escalated -------------------------------------
printf 'echo a\0b' >"$T/nul.sh"
req nul --data-binary @"$T/nul.sh" "$U/run"
t_eq "a snippet with a NUL byte is refused (400)" "$(cat "$T/nul.code")" 400
t_check "...saying so" grep -q 'NUL byte' "$T/nul.body"
printf 'echo \xff\xfe' >"$T/bad8.sh"
req bad8 --data-binary @"$T/bad8.sh" "$U/run"
t_eq "a snippet that is not UTF-8 is refused (400)" "$(cat "$T/bad8.code")" 400
head -c 65536 /dev/zero | tr '\0' a >"$T/max.sh"
head -c 65537 /dev/zero | tr '\0' a >"$T/big.sh"
echo 200 >"$E/mode"
req max --data-binary @"$T/max.sh" "$U/run"
t_eq "a 64 KiB snippet is accepted" "$(cat "$T/max.code")" 200
req big --data-binary @"$T/big.sh" "$U/run"
t_eq "a snippet of 64 KiB + 1 is refused (413)" "$(cat "$T/big.code") $(jfield big reason)" "413 too_large"
req big2 -H 'Expect:' --data-binary @"$T/big.sh" "$U/run"
t_eq "...also when the client sends it without waiting for 100-continue" "$(cat "$T/big2.code")" 413
req chunked -H 'Transfer-Encoding: chunked' --data-binary @"$T/hi.sh" "$U/run"
t_eq "a chunked body is refused (400)" "$(cat "$T/chunked.code")" 400
t_check "...saying to send Content-Length" grep -q 'Content-Length' "$T/chunked.body"
raw() { # send the bytes of $1 (printf format) and print the reply's status line
    $PY - "$port" "$1" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
while True:
    c = s.recv(4096)
    if not c: break
    data += c
print(data.split(b"\r\n")[0].decode())
PYEOF
}
t_eq "POST /run without Content-Length is refused (411)" \
    "$(raw 'POST /run HTTP/1.1\r\nHost: x\r\n\r\n')" "HTTP/1.1 411 Length Required"
t_eq "a bad Content-Length is refused (400)" \
    "$(raw 'POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nx')" "HTTP/1.1 400 Bad Request"
# since n_before, six requests were escalated (403, 429, noclen, garbage, close, 64 KiB)
t_eq "nothing refused above reached the escalation socket" "$(ls "$E"/req.* | wc -l)" "$((n_before + 6))"
req get_run "$U/run"
t_eq "GET /run is 405" "$(cat "$T/get_run.code")" 405
t_check "...naming POST as allowed" grep -qi '^allow: POST' "$T/get_run.hdr"
req post_h -X POST "$U/healthz"
t_eq "POST /healthz is 405" "$(cat "$T/post_h.code")" 405
req nf "$U/nope"
t_eq "an unknown path is 404 naming the routes" "$(cat "$T/nf.code") $(cat "$T/nf.body")" \
    "404 not found: the routes are GET /healthz, GET /readyz and POST /run"

# ---- health while a job runs; a client that goes away ------------------------
echo delay >"$E/mode"
before=$(last_req)
"${CURL[@]}" -o "$T/slow.body" -w '%{http_code}' --data-binary @"$T/hi.sh" "$U/run" >"$T/slow.code" 2>/dev/null &
slow_pid=$!
t_on_exit "kill $slow_pid"
for _ in $(seq 50); do [ "$(last_req)" != "$before" ] && break; sleep 0.1; done
t_check "a delayed job has reached the socket" test "$(last_req)" != "$before"
req busy_h --max-time 2 "$U/healthz"
req busy_r --max-time 2 "$U/readyz"
inflight=$(kill -0 "$slow_pid" 2>/dev/null && echo running || echo finished)
t_eq "/healthz and /readyz answer while the job is in flight" \
    "$(cat "$T/busy_h.code") $(cat "$T/busy_r.code") $inflight" "200 200 running"
wait "$slow_pid"
t_eq "...and the job's reply then arrives" "$(cat "$T/slow.code") $(cat "$T/slow.body")" \
    '200 {"exit_code": 0, "outcome": "exited", "stdout": "late\n"}'

echo hang >"$E/mode"
before=$(last_req)
"${CURL[@]}" --max-time 1.5 --data-binary @"$T/hi.sh" "$U/run" >/dev/null 2>&1
n=$(last_req); n=${n##*.}
got=
for _ in $(seq 50); do [ -e "$E/eof.$n" ] && { got=eof; break; }; sleep 0.1; done
t_eq "a client that disconnects mid-job makes the agent close the escalation connection" \
    "$([ "$(last_req)" != "$before" ] && echo sent) $got" "sent eof"
t_check "...and the agent logs it" grep -q 'the client went away; escalation connection closed' "$T/agent.log"

# ---- SIGTERM with a job in flight ---------------------------------------------
before=$(last_req)
"${CURL[@]}" -o "$T/term.body" -w '%{http_code}' --data-binary @"$T/hi.sh" "$U/run" >"$T/term.code" 2>/dev/null &
term_pid=$!
t_on_exit "kill $term_pid"
for _ in $(seq 50); do [ "$(last_req)" != "$before" ] && break; sleep 0.1; done
n=$(last_req); n=${n##*.}
kill -TERM "$agent_pid"
wait "$term_pid"
t_eq "SIGTERM: the client of a job in flight gets 503 shutting_down" \
    "$(cat "$T/term.code") $(jfield term reason)" "503 shutting_down"
got=
for _ in $(seq 50); do [ -e "$E/eof.$n" ] && { got=eof; break; }; sleep 0.1; done
t_eq "...and its escalation connection is closed (the job is cancelled)" "$got" eof
rc=timeout
for _ in $(seq 50); do
    if ! kill -0 "$agent_pid" 2>/dev/null; then wait "$agent_pid"; rc=$?; break; fi
    sleep 0.1
done
[ "$rc" != timeout ] && agent_pid=
t_eq "SIGTERM: the agent exits 0" "$rc" 0
t_check "SIGTERM: the agent says it shut down cleanly" grep -q "shut down cleanly" "$T/agent.log"
missing=
for want in '"GET /healthz HTTP/1.1" 200 3' '"POST /run HTTP/1.1" 200 ' '"POST /run HTTP/1.1" 403 ' \
    '"POST /run HTTP/1.1" 413 ' '"GET /nope HTTP/1.1" 404 '; do
    grep -qF -- "$want" "$T/agent.log" || missing="$missing [$want]"
done
t_eq "the agent logged one line per request with its status" "$missing" ""

t_done

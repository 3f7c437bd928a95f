#!/usr/bin/env python3
"""Poll http://127.0.0.1:PORT/PATH with a new connection per request until
STOPFILE exists; then print one JSON line: total, ok, failed, kinds of
failure (refused, reset, empty reply, non-2xx, timeout), the bodies seen,
and the longest run of consecutive failures in milliseconds.
Loopback only: the host is fixed to 127.0.0.1.
   poller.py PORT STOPFILE [PATH]
It also stops when STOPFILE's directory disappears, or after 10 minutes."""
import json, os, socket, sys, time

port, stop = int(sys.argv[1]), sys.argv[2]
path = sys.argv[3] if len(sys.argv) > 3 else "/"
res = {"total": 0, "ok": 0, "failed": 0, "kinds": {}, "bodies": {}, "max_fail_window_ms": 0}
fail_start = None

def once():
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionRefusedError:
        return "refused", None
    except ConnectionResetError:
        return "reset", None
    except socket.timeout:
        return "timeout", None
    except OSError as e:
        return "error:%d" % e.errno, None
    finally:
        s.close()
    if not data:
        return "empty", None
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split()
    if len(parts) < 2 or not parts[1].startswith("2"):
        return "status:" + (parts[1] if len(parts) > 1 else "?"), None
    body = data.split(b"\r\n\r\n", 1)[1].decode(errors="replace").strip() if b"\r\n\r\n" in data else ""
    return None, body[:60]

# Never outlive the test that started it: stop too when the stop file's
# directory is gone (the test's temp dir removed) or after 10 minutes.
deadline = time.monotonic() + 600
while not os.path.exists(stop) and os.path.isdir(os.path.dirname(os.path.abspath(stop))) \
        and time.monotonic() < deadline:
    kind, body = once()
    res["total"] += 1
    now = time.monotonic()
    if kind is None:
        res["ok"] += 1
        res["bodies"][body] = res["bodies"].get(body, 0) + 1
        if fail_start is not None:
            res["max_fail_window_ms"] = max(res["max_fail_window_ms"], int((now - fail_start) * 1000))
            fail_start = None
    else:
        res["failed"] += 1
        res["kinds"][kind] = res["kinds"].get(kind, 0) + 1
        if fail_start is None:
            fail_start = now
        time.sleep(0.005)
if fail_start is not None:
    res["max_fail_window_ms"] = max(res["max_fail_window_ms"], int((time.monotonic() - fail_start) * 1000))
print(json.dumps(res))

#!/usr/bin/python3
"""A loopback TCP proxy that cuts connections, for tests (stdlib only).

Listens on 127.0.0.1 and forwards every connection to 127.0.0.1:TARGET. Once
a connection has carried more than --after bytes from the client, both sides
of it are closed abruptly (the rest of that data is never forwarded). Later
connections are cut the same way.

With --swallow the cut is quiet: what the client sends beyond BYTES is read
and thrown away until it has been silent for half a second, and only then is
the connection closed, without an answer (so the client sent its whole
request and sees the connection die while it waits for the reply).

Usage: cut-proxy.py --target PORT --after BYTES --port-file FILE [--port N] [--log FILE]
                    [--swallow]
The listening port is written to --port-file once the socket listens. With
--log, one line per event is appended to FILE: "connect N" when connection N
is accepted, "cut N" when it is cut, "closed N BYTES" when it ends, with the
number of bytes the client sent on it (so a test can count connections and
what went over them, e.g. to see that a cut upload was not sent again).
"""
import argparse
import os
import socket
import sys
import threading


LOG = None
LOG_LOCK = threading.Lock()


def log(event, n, extra=""):
    if LOG is None:
        return
    with LOG_LOCK:
        with open(LOG, "a") as f:
            f.write("%s %d%s\n" % (event, n, extra))


SWALLOW = False


def swallow(src):
    """Read and drop what the client sends until it is silent for 0.5 s."""
    n = 0
    src.settimeout(0.5)
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            n += len(data)
    except OSError:  # the timeout, or the client gave up
        pass
    return n


def pump(src, dst, budget, state):
    got = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            got += len(data)
            if budget is not None:
                room = budget - state["sent"]
                if len(data) > room:
                    if room > 0:
                        dst.sendall(data[:room])
                    state["sent"] = budget
                    log("cut", state["n"])
                    if SWALLOW:
                        got += swallow(src)
                    break  # cut
                state["sent"] += len(data)
            dst.sendall(data)
    except OSError:
        pass
    if budget is not None:  # the client's side
        log("closed", state["n"], " %d" % got)
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def serve(client, target, after, n):
    log("connect", n)
    try:
        up = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    # RST instead of FIN on close: an abrupt cut
    for s in (client, up):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    state = {"sent": 0, "n": n}
    threading.Thread(target=pump, args=(up, client, None, state), daemon=True).start()
    pump(client, up, after, state)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--after", type=int, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--swallow", action="store_true")
    a = ap.parse_args()
    global LOG, SWALLOW
    LOG, SWALLOW = a.log, a.swallow
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        threading.Thread(target=serve, args=(c, a.target, a.after, n), daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)

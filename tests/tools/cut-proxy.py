#!/usr/bin/python3
"""A loopback TCP proxy that cuts connections, for tests (stdlib only).

Listens on 127.0.0.1 and forwards every connection to 127.0.0.1:TARGET. Once
a connection has carried more than --after bytes from the client, both sides
of it are closed abruptly (the rest of that data is never forwarded). Later
connections are cut the same way.

Usage: cut-proxy.py --target PORT --after BYTES --port-file FILE [--port N]
The listening port is written to --port-file once the socket listens.
"""
import argparse
import os
import socket
import sys
import threading


def pump(src, dst, budget, state):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if budget is not None:
                room = budget - state["sent"]
                if len(data) > room:
                    if room > 0:
                        dst.sendall(data[:room])
                    state["sent"] = budget
                    break  # cut
                state["sent"] += len(data)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def serve(client, target, after):
    try:
        up = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    # RST instead of FIN on close: an abrupt cut
    for s in (client, up):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    state = {"sent": 0}
    threading.Thread(target=pump, args=(up, client, None, state), daemon=True).start()
    pump(client, up, after, state)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--after", type=int, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, a.target, a.after), daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)

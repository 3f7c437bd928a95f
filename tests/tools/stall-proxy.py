#!/usr/bin/python3
"""A loopback TCP proxy that stalls downloads, for tests (stdlib only).

Listens on 127.0.0.1 and forwards every connection to 127.0.0.1:TARGET.
Requests go through untouched; of the answers, each connection carries at
most --after bytes, then the proxy stops forwarding and holds the connection
open (neither closing nor sending), so the client sits mid-transfer with a
partial file, as when a download is interrupted by Ctrl-C.

Usage: stall-proxy.py --target PORT --after BYTES --port-file FILE [--port N]
The listening port is written to --port-file once the socket listens.
"""
import argparse
import os
import socket
import threading
import time


def pump(src, dst, budget):
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if budget is not None and sent + len(data) > budget:
                dst.sendall(data[: budget - sent])
                while True:  # stall: hold both sides open
                    time.sleep(3600)
            sent += len(data)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(client, target, after):
    try:
        up = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(up, client, after), daemon=True).start()
    pump(client, up, None)


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
    main()

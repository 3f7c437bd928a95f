#!/usr/bin/python3
"""A forward HTTP proxy for tests that only ever connects to loopback.

Every client connection is spliced to 127.0.0.1:--target whatever host the
request names (absolute-form "GET http://host:port/path" is forwarded as is;
docker-registry accepts it), and the first request line of each connection is
appended to --log. Prints "ready PORT" once listening. stdlib only.
"""
import argparse
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    lock = threading.Lock()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("ready", ls.getsockname()[1], flush=True)

    def serve(c):
        first = b""
        while b"\n" not in first and len(first) < 65536:
            d = c.recv(4096)
            if not d:
                c.close()
                return
            first += d
        with lock, open(a.log, "a") as f:
            f.write(first.split(b"\r\n", 1)[0].decode("latin-1") + "\n")
        u = socket.create_connection(("127.0.0.1", a.target))
        u.sendall(first)
        threading.Thread(target=pump, args=(u, c), daemon=True).start()
        pump(c, u)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A registry front that serves blobs from "object storage" (loopback only).

Front port: every request must carry an Authorization header (else 401 with a
Basic challenge), so a client has credentials in play. Blob GETs are answered
307 with an absolute Location on the storage port; everything else (GET/HEAD
of /v2/, manifests, tags) is forwarded to --registry (a plain-http
docker-registry on loopback, no auth). Repositories named loop/... redirect
blob GETs to themselves for ever; repositories named mredir/... answer
manifest GETs with a 307 to the same path on the registry; insecure/... redirect
blob GETs to plain http on [::ffff:127.0.0.1] (loopback, but not by Substrate's
definition: a stand-in for a remote host, which the client must refuse before
connecting); badrealm/... answer every request with a Bearer challenge whose
realm is plain http on [::ffff:127.0.0.1].

Storage port: serves blob bytes fetched from --registry, and appends one JSON
line per request to --log: {"path", "authorization": true|false}. It must
never see an Authorization header.
Prints "ready FRONT_PORT STORAGE_PORT" once both listen.
"""
import argparse
import http.client
import http.server
import json
import re
import sys
import threading

BLOB = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")
MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)  # 127.0.0.1:PORT
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    rhost, rport = a.registry.rsplit(":", 1)
    assert rhost.startswith("127."), "loopback only"
    lock = threading.Lock()

    def upstream(method, path, headers=None):
        c = http.client.HTTPConnection(rhost, int(rport), timeout=60)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r, r.read() if method != "HEAD" else b"", c

    class Base(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, body=b"", headers=(), head=False):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    class Storage(Base):
        def do_GET(self):
            with lock, open(a.log, "a") as f:
                f.write(json.dumps({"path": self.path,
                                    "authorization": "Authorization" in self.headers}) + "\n")
            r, body, c = upstream("GET", self.path)
            c.close()
            self.send(r.status, body, [("Content-Type", "application/octet-stream")])

    storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)
    sport = storage.server_address[1]

    class Front(Base):
        def handle_any(self, head):
            if self.path.startswith("/v2/badrealm/"):
                return self.send(401, b"", [("WWW-Authenticate",
                                             'Bearer realm="http://[::ffff:127.0.0.1]:%d/token",'
                                             'service="x",scope="repository:badrealm/img:pull"'
                                             % sport)], head)
            if "Authorization" not in self.headers:
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}',
                                 [("WWW-Authenticate", 'Basic realm="front"'),
                                  ("Content-Type", "application/json")], head)
            m = BLOB.match(self.path)
            if m and not head:
                repo = m.group(1)
                if repo.startswith("loop/"):
                    loc = "http://127.0.0.1:%d%s" % (self.server.server_address[1], self.path)
                elif repo.startswith("insecure/"):
                    loc = "http://[::ffff:127.0.0.1]:%d%s" % (sport, self.path)
                else:
                    loc = "http://127.0.0.1:%d%s" % (sport, self.path)
                return self.send(307, b"", [("Location", loc)], head)
            m = MANIFEST.match(self.path)
            if m and m.group(1).startswith("mredir/"):
                return self.send(307, b"", [("Location", "http://%s%s" % (a.registry, self.path))],
                                 head)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("accept",)}
            r, body, c = upstream("HEAD" if head else "GET", self.path, hdrs)
            out = [(k, v) for k, v in r.getheaders()
                   if k.lower() in ("content-type", "docker-content-digest")]
            if head:
                out.append(("Content-Length", r.getheader("Content-Length", "0")))
                self.send_response(r.status)
                for k, v in out:
                    self.send_header(k, v)
                self.end_headers()
            else:
                self.send(r.status, body, out)
            c.close()

        def do_GET(self):
            self.handle_any(False)

        def do_HEAD(self):
            self.handle_any(True)

    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    print("ready", front.server_address[1], sport, flush=True)
    front.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

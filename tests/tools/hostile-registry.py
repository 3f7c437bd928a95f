#!/usr/bin/python3
"""A deliberately hostile OCI distribution registry, for tests (stdlib only).

Listens on 127.0.0.1 only. Every repository serves one small image (config +
one layer + manifest, tag "v1"); the repository name picks how the registry
misbehaves:

  good                  honest (a sanity check for the tests themselves)
  wrong-manifest        manifest bytes do not hash to the digest it claims
                        (Docker-Content-Digest; and when asked by digest)
  wrong-blob            the layer's bytes do not hash to its digest
  truncated             the layer is announced with Content-Length, half of it
                        is sent, then the connection is closed
  big-blob              the manifest announces a layer larger than the 8 GiB cap
  zero-size             the manifest's layer descriptor says 0 bytes (the layer
                        itself is served honestly: its bytes match its digest)
  overlong-blob         the layer is streamed (chunked) with more bytes than its
                        descriptor says
  long-length-blob      the layer is served with a Content-Length (and body) one
                        byte longer than its descriptor says
  big-manifest          a 5 MiB manifest, with Content-Length
  big-manifest-chunked  a 5 MiB manifest, chunked (no length up front)
  mismatched-type       the manifest is served as an index Content-Type
  wrong-child-size      "v1" is an image index whose one child descriptor gives
                        the child manifest's size plus one (the child itself is
                        served honestly by digest)
  bearer                every request gets 401 with a Bearer challenge
  fanout                tag v1 is an index of 200 identical children, nested 4
                        levels deep (the innermost children are the good
                        image): 200^4 paths to one image, ~30 KB of JSON
  fanout-wide           tag v1 is an index of 5000 distinct image manifests
                        (more descriptors than a pull may follow)
  drip                  the layer is sent at 1 byte per second
  drip-manifest         the manifest is sent at 1 byte per second
  trickle               the layer flows steadily at ~8 KiB/s (about 30 s)

GET /_counts answers {"METHOD path": requests so far} (for tests that count
what a client fetched).
  utf8-sig-N            (N = 0, 1, 2) honest image; its cosign signature tag
                        (sha256-<hex>.sig) serves a manifest whose mediaType is N
                        ASCII bytes then 2.4 KiB of 3-byte UTF-8 characters: an
                        error message quoting it is cut at 1 KiB, and for at least
                        one N that cut falls inside a character
  escape-error          every manifest and blob answers 404 with an error body
                        whose code, message and detail hold terminal escapes
                        (clear screen, cursor home, a fake "Verified OK" line)
  escape-sig            honest image; its signature tag serves a manifest whose
                        mediaType holds terminal escapes
  escape-config         an image whose config labels, Env and Cmd hold terminal
                        escapes
  configured            an image whose config has Entrypoint, Cmd, Env, User,
                        WorkingDir and ExposedPorts

Pushes (blob uploads, manifest PUTs) are accepted into memory, digest-checked;
the upload Location depends on the repository:

  relative-location     a relative Location ("<uuid>?_state=..."), whose query
                        must come back on the PUT
  rooted-location       a path-only Location ("/v2/.../uploads/<uuid>")
  offsite-upload        an absolute Location naming another host (127.0.0.2:9,
                        still loopback): a client must refuse to follow it
  offport-upload        an absolute Location on this host but another port
                        (this port + 1): refused the same way
  prefix-port-upload    an absolute Location on this host whose port is this
                        port without its last digit (a prefix of the real
                        "host:port"): refused the same way
  lying-put             manifest PUTs answer with a wrong Docker-Content-Digest
  moving-tag            a signature or attestation tag (*.sig, *.att) moves
                        between a client's read and its write: a GET finds no
                        such tag, a HEAD then finds another signer's manifest
                        (the "claimed" digest); once a client PUTs the tag, GET
                        and HEAD serve what it put
  anything else         an absolute Location on this registry

Usage: hostile-registry.py --port-file FILE [--info FILE] [--port N]
The chosen port is written to --port-file once the socket listens; --info gets
a JSON object with the digests the tests need.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
BIG = 9 << 30  # larger than SUB_REG_MAX_BLOB (8 GiB)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canon(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


CONFIG = canon({"architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Labels": {"org.example.hostile": "yes"}}})
LAYER = bytes((i * 7 + 3) % 251 for i in range(256 * 1024))
WRONG_LAYER = bytes(b ^ 0xFF for b in LAYER)


def manifest(layer_size=len(LAYER), pad=0):
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": sha(CONFIG), "size": len(CONFIG)},
         "layers": [{"mediaType": OCI_LAYER, "digest": sha(LAYER), "size": layer_size}]}
    if pad:
        m["annotations"] = {"padding": "x" * pad}
    return canon(m)


GOOD = manifest()
# A second, different manifest: its digest is what wrong-manifest claims to serve.
OTHER = canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": sha(CONFIG), "size": len(CONFIG)},
               "layers": []})
BIG_BLOB = manifest(layer_size=BIG)
ZERO_SIZE = manifest(layer_size=0)
HUGE_MANIFEST = manifest(pad=5 << 20)
BAD_CHILD_INDEX = canon({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(GOOD), "size": len(GOOD) + 1,
                                        "platform": {"architecture": "amd64", "os": "linux"}}]})


def index_of(child, n, mt=OCI_MANIFEST):
    d = {"mediaType": mt, "digest": sha(child), "size": len(child)}
    return canon({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d] * n})


# fanout: FANOUT[0] is tag v1; FANOUT[i] names FANOUT[i+1] 200 times; the last names GOOD.
FANOUT = [index_of(GOOD, 200)]
for _ in range(3):
    FANOUT.insert(0, index_of(FANOUT[0], 200, OCI_INDEX))
WIDE = {}  # fanout-wide, made on first use: "index" and "children" (digest -> bytes)
WIDE_LOCK = threading.Lock()


def wide():
    with WIDE_LOCK:
        if not WIDE:
            ch = {}
            for i in range(5000):
                c = manifest(pad=1 + i % 7)[:-1] + b',"n":%d}' % i
                ch[sha(c)] = c
            WIDE["children"] = ch
            WIDE["index"] = canon({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": len(c)} for d, c in ch.items()]})
        return WIDE
COUNTS = {}
COUNTS_LOCK = threading.Lock()
# Terminal escapes: clear the screen, home the cursor, print a fake verdict,
# set the window title, and a raw C1 CSI (0x9b as U+009B).
ESC = "\x1b[2J\x1b[H\x1b[32mVerified OK\x1b[0m\x1b]0;owned\x07\u009b31m"
UTF8_MT = "\u20ac" * 800  # 2.4 KiB of 3-byte characters


def image(config):
    return canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                  "layers": [{"mediaType": OCI_LAYER, "digest": sha(LAYER), "size": len(LAYER)}]})


ESC_CONFIG = canon({"architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "config": {"Labels": {"org.example.hostile": ESC, "x" + ESC: "key"},
                               "Env": ["A=" + ESC], "Cmd": [ESC]}})
CONFIGURED = canon({"architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "config": {"Entrypoint": ["/bin/hello", "--serve"], "Cmd": ["--port", "8080"],
                               "Env": ["PATH=/usr/bin:/bin", "MODE=test"], "User": "65532:65532",
                               "WorkingDir": "/srv", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                               "Labels": {"org.example.hostile": "no"}}})
CONFIGS = {"escape-config": ESC_CONFIG, "configured": CONFIGURED}


def sig_manifest(media_type):
    return canon({"schemaVersion": 2, "mediaType": media_type,
                  "config": {"mediaType": OCI_CONFIG, "digest": sha(CONFIG), "size": len(CONFIG)},
                  "layers": []})


STORE = {}  # pushed blobs and manifests: (repo, digest) -> bytes
TAGS = {}  # manifests pushed by tag to moving-tag: (repo, tag) -> bytes
STORE_LOCK = threading.Lock()
UPLOAD_RE = re.compile(r"^/v2/(?P<repo>[a-z0-9-]+)/blobs/uploads/(?P<uid>[0-9a-f]*)(?:\?(?P<q>.*))?$")
PATH_RE = re.compile(r"^/v2/(?P<repo>[a-z0-9-]+)/(?P<kind>manifests|blobs)/(?P<ref>[A-Za-z0-9_.:-]+)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-registry/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _error(self, status, code, msg, extra=None):
        detail = {"hint": ESC} if ESC in code else None
        body = canon({"errors": [{"code": code, "message": msg, "detail": detail}]})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send(self, body, ctype, digest=None, length=None):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client refused it: expected

    def _chunked(self, ctype, total, piece=b"\0" * 65536):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        try:
            while sent < total:
                n = min(len(piece), total - sent)
                self.wfile.write(b"%x\r\n" % n + piece[:n] + b"\r\n")
                sent += n
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _drip(self, body, ctype, per_second):
        """Send body at per_second bytes a second (Content-Length up front)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        step = max(1, per_second // 8)
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(step / per_second)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_GET(self):
        with COUNTS_LOCK:
            key = "%s %s" % (self.command, self.path)
            COUNTS[key] = COUNTS.get(key, 0) + 1
        if self.path == "/_counts":
            with COUNTS_LOCK:
                return self._send(canon(COUNTS), "application/json")
        if self.path == "/v2/" or self.path == "/v2":
            return self._send(b"{}", "application/json")
        m = PATH_RE.match(self.path)
        if not m:
            return self._error(404, "NAME_UNKNOWN", "no such path")
        repo, kind, ref = m.group("repo"), m.group("kind"), m.group("ref")
        if repo == "escape-error":
            return self._error(404, "MANIFEST_UNKNOWN" + ESC, "manifest unknown" + ESC)
        if repo == "bearer":
            return self._error(401, "UNAUTHORIZED", "authentication required", {
                "WWW-Authenticate": 'Bearer realm="http://127.0.0.1:9/token",service="hostile",'
                                    'scope="repository:bearer:pull"'})
        if kind == "manifests":
            return self.manifest(repo, ref)
        return self.blob(repo, ref)

    do_HEAD = do_GET

    def manifest(self, repo, ref):
        if repo in CONFIGS:
            m = image(CONFIGS[repo])
            if ref in ("v1", sha(m)):
                return self._send(m, OCI_MANIFEST, digest=sha(m))
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        if re.match(r"^(utf8-sig-[0-2]|escape-sig)$", repo) and ref == "sha256-%s.sig" % sha(GOOD)[7:]:
            if repo == "escape-sig":
                m = sig_manifest("application/x-" + ESC)
            else:
                m = sig_manifest("x" * int(repo[-1]) + UTF8_MT)
            return self._send(m, OCI_MANIFEST, digest=sha(m))
        if repo == "wrong-manifest":
            # claims to be OTHER, serves GOOD
            if ref in ("v1", sha(OTHER)):
                return self._send(GOOD, OCI_MANIFEST, digest=sha(OTHER))
        elif repo == "big-blob":
            if ref in ("v1", sha(BIG_BLOB)):
                return self._send(BIG_BLOB, OCI_MANIFEST, digest=sha(BIG_BLOB))
        elif repo == "zero-size":
            if ref in ("v1", sha(ZERO_SIZE)):
                return self._send(ZERO_SIZE, OCI_MANIFEST, digest=sha(ZERO_SIZE))
        elif repo == "big-manifest":
            if ref == "v1":
                return self._send(HUGE_MANIFEST, OCI_MANIFEST, digest=sha(HUGE_MANIFEST))
        elif repo == "big-manifest-chunked":
            if ref == "v1":
                return self._chunked(OCI_MANIFEST, len(HUGE_MANIFEST), HUGE_MANIFEST[:65536])
        elif repo == "moving-tag" and ref.endswith((".sig", ".att")):
            with STORE_LOCK:
                put = TAGS.get((repo, ref))
            if put is not None:
                return self._send(put, OCI_MANIFEST, digest=sha(put))
            if self.command == "HEAD":
                return self._send(OTHER, OCI_MANIFEST, digest=sha(OTHER))
        elif repo == "fanout":
            for i, body in enumerate(FANOUT):
                if ref == sha(body) or (i == 0 and ref == "v1"):
                    return self._send(body, OCI_INDEX, digest=sha(body))
            if ref == sha(GOOD):
                return self._send(GOOD, OCI_MANIFEST, digest=sha(GOOD))
        elif repo == "fanout-wide":
            w = wide()
            if ref in ("v1", sha(w["index"])):
                return self._send(w["index"], OCI_INDEX, digest=sha(w["index"]))
            if ref in w["children"]:
                return self._send(w["children"][ref], OCI_MANIFEST, digest=ref)
        elif repo == "drip-manifest":
            if ref in ("v1", sha(GOOD)):
                return self._drip(GOOD, OCI_MANIFEST, 1)
        elif repo == "wrong-child-size":
            if ref in ("v1", sha(BAD_CHILD_INDEX)):
                return self._send(BAD_CHILD_INDEX, OCI_INDEX, digest=sha(BAD_CHILD_INDEX))
            if ref == sha(GOOD):
                return self._send(GOOD, OCI_MANIFEST, digest=sha(GOOD))
        elif repo == "mismatched-type":
            if ref in ("v1", sha(GOOD)):
                return self._send(GOOD, OCI_INDEX, digest=sha(GOOD))
        elif ref in ("v1", sha(GOOD)):
            return self._send(GOOD, OCI_MANIFEST, digest=sha(GOOD))
        return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        m = UPLOAD_RE.match(self.path)
        if not m or m.group("uid"):
            return self._error(404, "NAME_UNKNOWN", "no such path")
        self._body()
        repo, uid = m.group("repo"), uuid.uuid4().hex
        if repo == "relative-location":
            loc = uid + "?_state=keep-me"
        elif repo == "rooted-location":
            loc = "/v2/%s/blobs/uploads/%s" % (repo, uid)
        elif repo == "offsite-upload":
            loc = "http://127.0.0.2:9/v2/%s/blobs/uploads/%s" % (repo, uid)
        elif repo == "offport-upload":
            loc = "http://127.0.0.1:%d/v2/%s/blobs/uploads/%s" % (self.server.server_address[1] + 1, repo, uid)
        elif repo == "prefix-port-upload":
            loc = "http://127.0.0.1:%s/v2/%s/blobs/uploads/%s" % (str(self.server.server_address[1])[:-1], repo, uid)
        else:
            loc = "http://127.0.0.1:%d/v2/%s/blobs/uploads/%s" % (self.server.server_address[1], repo, uid)
        self.send_response(202)
        self.send_header("Location", loc)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        body = self._body()
        m = UPLOAD_RE.match(self.path)
        if m and m.group("uid"):
            q = dict(kv.split("=", 1) for kv in (m.group("q") or "").split("&") if "=" in kv)
            want = q.get("digest", "").replace("%3A", ":").replace("%3a", ":")
            if m.group("repo") == "relative-location" and q.get("_state") != "keep-me":
                return self._error(400, "BLOB_UPLOAD_INVALID", "the upload state was lost")
            if sha(body) != want:
                return self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            with STORE_LOCK:
                STORE[(m.group("repo"), want)] = body
            self.send_response(201)
            self.send_header("Docker-Content-Digest", want)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        m = PATH_RE.match(self.path)
        if not m or m.group("kind") != "manifests":
            return self._error(404, "NAME_UNKNOWN", "no such path")
        d = sha(body)
        with STORE_LOCK:
            STORE[(m.group("repo"), d)] = body
            if m.group("repo") == "moving-tag" and not m.group("ref").startswith("sha256:"):
                TAGS[(m.group("repo"), m.group("ref"))] = body
        self.send_response(201)
        self.send_header("Docker-Content-Digest", sha(OTHER) if m.group("repo") == "lying-put" else d)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def blob(self, repo, ref):
        with STORE_LOCK:
            pushed = STORE.get((repo, ref))
        if pushed is not None:
            return self._send(pushed, "application/octet-stream", digest=ref)
        if ref == sha(CONFIG):
            return self._send(CONFIG, "application/octet-stream", digest=ref)
        if repo in CONFIGS and ref == sha(CONFIGS[repo]):
            return self._send(CONFIGS[repo], "application/octet-stream", digest=ref)
        if ref != sha(LAYER):
            return self._error(404, "BLOB_UNKNOWN", "blob unknown")
        if repo == "wrong-blob":
            return self._send(WRONG_LAYER, "application/octet-stream", digest=ref)
        if repo == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(LAYER)))
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.write(LAYER[: len(LAYER) // 2])
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        if repo == "big-blob":
            # only reached by a client that ignored the descriptor's size
            return self._chunked("application/octet-stream", 64 << 20)
        if repo == "drip":
            return self._drip(LAYER, "application/octet-stream", 1)
        if repo == "trickle":
            return self._drip(LAYER, "application/octet-stream", 8192)
        if repo == "long-length-blob":
            return self._send(LAYER + b"\0", "application/octet-stream", digest=ref)
        if repo == "overlong-blob":
            return self._chunked("application/octet-stream", len(LAYER) * 4, LAYER)
        return self._send(LAYER, "application/octet-stream", digest=ref)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up on us is the point


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--info")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.info:
        with open(a.info + ".tmp", "w") as f:
            json.dump({"port": port, "manifest": sha(GOOD), "claimed": sha(OTHER),
                       "layer": sha(LAYER), "config": sha(CONFIG),
                       "big_blob_manifest": sha(BIG_BLOB), "fanout": [sha(b) for b in FANOUT],
                       "configured_manifest": sha(image(CONFIGURED)), "configured_config": sha(CONFIGURED),
                       "escape_config_manifest": sha(image(ESC_CONFIG)), "good_size": len(GOOD),
                       "bad_child_index": sha(BAD_CHILD_INDEX)}, f)
        os.rename(a.info + ".tmp", a.info)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

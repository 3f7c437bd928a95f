#!/usr/bin/python3
"""A small Docker-registry token service for tests (loopback only).

GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]&account=U
with optional HTTP basic credentials answers {"token": JWT, "expires_in": N}
(or "access_token" with --field access_token). The JWT is ES256-signed with
--sign-key; its header carries the signing certificate (--sign-cert) as an
x5c chain, which docker-registry checks against its auth.token.rootcertbundle.

Users: --user NAME:PASSWORD:ACTIONS (ACTIONS comma-separated, e.g. pull,push),
repeatable. --anonymous ACTIONS lets requests without credentials get tokens
for those actions. A wrong password (or unknown user) is answered 401; the
granted actions are the requested ones the user may have (a token for pull
cannot push). --log FILE appends one JSON line per request.
--tls-cert/--tls-key serve https. Prints "ready PORT" once listening.
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import ssl
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--sign-key", required=True)
    ap.add_argument("--sign-cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", action="append", default=[])
    ap.add_argument("--anonymous", default="")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--field", default="token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--log")
    a = ap.parse_args()

    key = serialization.load_pem_private_key(open(a.sign_key, "rb").read(), None)
    cert = x509.load_pem_x509_certificate(open(a.sign_cert, "rb").read())
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    users = {}
    for u in a.user:
        name, pw, acts = u.split(":", 2)
        users[name] = (pw, set(x for x in acts.split(",") if x))
    anon = set(x for x in a.anonymous.split(",") if x)

    def sign(claims):
        header = {"typ": "JWT", "alg": "ES256", "x5c": x5c}
        si = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        der = key.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return si + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def log(rec):
        if a.log:
            with open(a.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, body, extra=()):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            if u.path != "/token":
                return self.reply(404, {"error": "not found"})
            user, allowed = None, anon
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    user, pw = base64.b64decode(auth[6:]).decode().split(":", 1)
                except Exception:
                    user, pw = "?", None
                if user not in users or users[user][0] != pw:
                    log({"user": user, "result": "denied", "scope": q.get("scope", [])})
                    return self.reply(401, {"details": "wrong user name or password"},
                                      [("WWW-Authenticate", 'Basic realm="token"')])
                allowed = users[user][1]
            elif not anon:
                log({"user": None, "result": "denied", "scope": q.get("scope", [])})
                return self.reply(401, {"details": "authentication required"},
                                  [("WWW-Authenticate", 'Basic realm="token"')])
            if q.get("service", [""])[0] != a.service:
                return self.reply(400, {"details": "unknown service"})
            access = []
            for sc in q.get("scope", []):
                parts = sc.split(":")
                if len(parts) < 3:
                    continue
                typ, name, acts = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                granted = [x for x in acts if x in allowed]
                access.append({"type": typ, "name": name, "actions": granted})
            now = int(time.time())
            claims = {"iss": a.issuer, "sub": user or "", "aud": a.service, "exp": now + a.expires_in,
                      "nbf": now - 10, "iat": now, "jti": b64url(os.urandom(12)), "access": access}
            log({"user": user, "result": "granted", "scope": q.get("scope", []), "access": access})
            body = {a.field: sign(claims), "expires_in": a.expires_in,
                    "issued_at": datetime.datetime.utcfromtimestamp(now).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self.reply(200, body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Offline cosign signing and verification through the CLI: key generation
# (files, modes, no overwrite, no terminal), signatures OpenSSL accepts,
# `verify --offline` on the cosign vectors and on each negative, each
# refused for its own reason.
. "$(dirname "$0")/../lib.sh"
F=$TOP/tests/fixtures/cosign
D=$(cat "$F/image-manifest.digest")
PY=/usr/bin/python3
cd "$T" || exit 1
unset SUBSTRATE_PASSPHRASE

# ---- key generate ---------------------------------------------------------
t_fails "key generate with SUBSTRATE_PASSPHRASE reports the key id" 0 \
    "^Generated ECDSA P-256 key sha256:[0-9a-f]{64}" \
    env SUBSTRATE_PASSPHRASE=pw-1 "$BIN" key generate "$T/k"
t_eq "private key file mode is 0600" "$(stat -c %a "$T/k.key" 2>&1)" 600
t_eq "public key file mode is 0644" "$(stat -c %a "$T/k.pub" 2>&1)" 644
t_eq "private key is PEM ENCRYPTED SIGSTORE PRIVATE KEY" "$(head -n1 "$T/k.key" 2>&1)" \
    "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
t_check "private key body is cosign's scrypt + nacl/secretbox JSON" $PY -c '
import base64, json, sys
lines = open(sys.argv[1]).read().splitlines()
j = json.loads(base64.b64decode("".join(lines[1:-1])))
assert list(j) == ["kdf", "cipher", "ciphertext"], list(j)
assert j["kdf"]["name"] == "scrypt" and j["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}, j["kdf"]
assert len(base64.b64decode(j["kdf"]["salt"])) == 32
assert j["cipher"]["name"] == "nacl/secretbox" and len(base64.b64decode(j["cipher"]["nonce"])) == 24
assert len(base64.b64decode(j["ciphertext"])) > 100
' "$T/k.key"
t_fails "public key is an ECDSA P-256 SPKI key to OpenSSL" 0 "NIST CURVE: P-256|ASN1 OID: prime256v1" \
    openssl pkey -pubin -in "$T/k.pub" -noout -text
want_id="sha256:$(openssl pkey -pubin -in "$T/k.pub" -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)"
t_eq "key id is sha256 of the SPKI DER" "$("$BIN" key id "$T/k.pub" 2>&1)" "$want_id"
before=$(sha256sum "$T/k.key" "$T/k.pub")
t_fails "key generate refuses to overwrite, naming both files" 2 "k\.key and .*k\.pub already exist" \
    env SUBSTRATE_PASSPHRASE=pw-2 "$BIN" key generate "$T/k"
t_eq "existing key files are unchanged" "$(sha256sum "$T/k.key" "$T/k.pub")" "$before"
cp "$T/k.pub" "$T/only.pub"
t_fails "key generate refuses when only the .pub exists" 2 "only\.pub already exists" \
    env SUBSTRATE_PASSPHRASE=pw-2 "$BIN" key generate "$T/only"
t_eq "and writes no .key beside it" "$(ls "$T/only.key" 2>/dev/null)" ""

# No passphrase source and no terminal: fail at once, never wait.
start=$SECONDS
t_fails "no terminal and no passphrase: fails at once" 2 "no terminal to ask on" \
    bash -c 'exec env -u SUBSTRATE_PASSPHRASE timeout 10 setsid -w "$0" key generate "$1" </dev/null' \
    "$BIN" "$T/x"
t_eq "  ... within 5 seconds" "$(( SECONDS - start < 5 ))" 1
t_eq "  ... and writes nothing" "$(ls "$T"/x.* 2>/dev/null)" ""

# On a terminal: prompt without echo, twice. A pseudo-terminal stands in.
pty_generate() { # prefix first-answer second-answer -> prints exit code, "echoed" if seen
    $PY - "$BIN" "$@" <<'PYEOF'
import os, pty, select, sys, time
binp, prefix, a, b = sys.argv[1:5]
env = {k: v for k, v in os.environ.items() if k != "SUBSTRATE_PASSPHRASE"}
pid, fd = pty.fork()
if pid == 0:
    os.execve(binp, [binp, "key", "generate", prefix], env)
out = b""
def pump(pat, t=20):
    global out
    end = time.time() + t
    while (pat is None or pat not in out) and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if pat is None: return
            continue
        try: d = os.read(fd, 4096)
        except OSError: return
        if not d: return
        out += d
pump(b"Passphrase for new key")
os.write(fd, a.encode() + b"\n")
pump(b"Enter it again")
os.write(fd, b.encode() + b"\n")
_, st = os.waitpid(pid, 0)
pump(None, 2)
print(os.waitstatus_to_exitcode(st), "prompted-twice" if b"Enter it again" in out else "no-second-prompt",
      "echoed" if a.encode() in out else "no-echo")
PYEOF
}
t_eq "terminal prompt: no echo, asked twice, key written" "$(pty_generate "$T/tty" tty-pass-1 tty-pass-1)" \
    "0 prompted-twice no-echo"
t_check "  ... and the key opens with that passphrase" \
    env SUBSTRATE_PASSPHRASE=tty-pass-1 "$BIN" sign --offline --key "$T/tty.key" --payload "$F/payload.json"
t_eq "terminal prompt: two different answers are refused" "$(pty_generate "$T/tty2" aaa bbb)" \
    "2 prompted-twice no-echo"
t_eq "  ... and nothing is written" "$(ls "$T"/tty2.* 2>/dev/null)" ""

# ---- sign (offline), checked by OpenSSL -----------------------------------
t_check "sign --offline builds and signs the payload" \
    env SUBSTRATE_PASSPHRASE=pw-1 "$BIN" sign --offline --key "$T/k.key" \
    --identity 127.0.0.1:5000/hello --digest "$D" \
    --output-payload "$T/p.json" --output-signature "$T/s.b64"
t_check "payload bytes equal the cosign vector" cmp "$T/p.json" "$F/payload.json"
base64 -d "$T/s.b64" >"$T/s.der" 2>/dev/null
t_fails "openssl dgst -verify accepts our signature" 0 "Verified OK" \
    openssl dgst -sha256 -verify "$T/k.pub" -signature "$T/s.der" "$T/p.json"
t_fails "verify --offline accepts our signature, naming our key" 0 "^Verified OK by key $want_id" \
    "$BIN" verify --offline --key "$T/k.pub" --payload "$T/p.json" --signature "$T/s.b64" \
    --digest "$D" --identity 127.0.0.1:5000/hello
t_fails "wrong passphrase is refused before anything is signed" 2 "wrong passphrase" \
    env SUBSTRATE_PASSPHRASE=not-it "$BIN" sign --offline --key "$T/k.key" \
    --identity 127.0.0.1:5000/hello --digest "$D" \
    --output-payload "$T/p2.json" --output-signature "$T/s2.b64"
t_eq "  ... and nothing is written" "$(ls "$T/p2.json" "$T/s2.b64" 2>/dev/null)" ""

printf 'pw-1\n' >"$T/k.pass"
chmod 0644 "$T/k.pass"
t_fails "a group/world-readable .pass beside the key is refused" 2 "k\.pass: mode 0644.*chmod 600" \
    "$BIN" sign --offline --key "$T/k.key" --payload "$T/p.json"
chmod 0600 "$T/k.pass"
t_fails "a 0600 .pass beside the key is used" 0 "Signed payload sha256:[0-9a-f]{64} with key $want_id" \
    "$BIN" sign --offline --key "$T/k.key" --payload "$T/p.json" --output-signature "$T/s3.b64"
rm -f "$T/k.pass"

t_check "the cosign vector key decrypts with passphrase.txt and signs" \
    "$BIN" sign --offline --key "$F/cosign.key" --passphrase-file "$F/passphrase.txt" \
    --payload "$F/payload.json" --output-signature "$T/v.b64"
base64 -d "$T/v.b64" >"$T/v.der" 2>/dev/null
t_fails "  ... and openssl verifies that with cosign.pub" 0 "Verified OK" \
    openssl dgst -sha256 -verify "$F/cosign.pub" -signature "$T/v.der" "$F/payload.json"

# ---- verify --offline on the vectors --------------------------------------
vid=$("$BIN" key id "$F/cosign.pub" 2>&1)
verify_vec() { # payload signature [extra args...]
    local p=$1 s=$2; shift 2
    "$BIN" verify --offline --key "$F/cosign.pub" --payload "$p" --signature "$s" --digest "$D" "$@"
}
t_fails "vector signature verifies" 0 "^Verified OK by key $vid" \
    verify_vec "$F/payload.json" "$F/signature.b64" --identity 127.0.0.1:5000/hello

U=$F/upstream-containers-image
UD="sha256:$(sha256sum "$U/manifest.json" | cut -d' ' -f1)"
UREF=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["critical"]["identity"]["docker-reference"])' "$U/payload.json")
t_fails "real-cosign signature verifies offline" 0 "^Verified OK by key $("$BIN" key id "$U/cosign.pub")" \
    "$BIN" verify --offline --key "$U/cosign.pub" --payload "$U/payload.json" \
    --signature "$U/signature.b64" --digest "$UD" --identity "$UREF"

t_fails "negative/otherkey: no key matched" 1 "no trusted key matched.*with key $vid" \
    verify_vec "$F/payload.json" "$F/negative/otherkey.signature.b64" --identity 127.0.0.1:5000/hello
t_fails "negative/bitflip: signature does not verify" 1 "does not verify over these payload bytes \(sha256:7870c54d" \
    verify_vec "$F/payload.json" "$F/negative/bitflip.signature.b64" --identity 127.0.0.1:5000/hello
alt="sha256:$(sha256sum "$F/negative/altered.payload.json" | cut -d' ' -f1)"
t_fails "negative/altered.payload: signature does not verify over the altered bytes" 1 \
    "does not verify over these payload bytes \($alt\)" \
    verify_vec "$F/negative/altered.payload.json" "$F/signature.b64" --identity 127.0.0.1:5000/hello
t_fails "negative/wrongdigest: signature OK but digest mismatch" 1 \
    "digest mismatch: the signature by key $vid is valid, but its payload names image sha256:d29b674e[0-9a-f]+ and the image is $D" \
    verify_vec "$F/negative/wrongdigest.payload.json" "$F/negative/wrongdigest.signature.b64" \
    --identity 127.0.0.1:5000/hello
t_fails "identity is compared as written (localhost is not 127.0.0.1)" 1 "identity mismatch" \
    verify_vec "$F/payload.json" "$F/signature.b64" --identity localhost:5000/hello
t_fails "--any-repo accepts the signature under a mirror's name" 0 "not checked: --any-repo" \
    verify_vec "$F/payload.json" "$F/signature.b64" --any-repo
printf 'not base64!' >"$T/bad.b64"
t_fails "malformed signature" 1 "malformed signature" \
    verify_vec "$F/payload.json" "$T/bad.b64" --identity 127.0.0.1:5000/hello
t_fails "verify without an identity policy is a usage error" 2 "exactly one of --identity" \
    verify_vec "$F/payload.json" "$F/signature.b64"

"$BIN" verify --offline --key "$T/k.pub" --key "$F/cosign.pub" --payload "$F/negative/wrongdigest.payload.json" \
    --signature "$F/negative/wrongdigest.signature.b64" --digest "$D" --identity 127.0.0.1:5000/hello \
    --json >"$T/rec.json" 2>/dev/null
rc=$?
t_eq "--json refusal exits 1" "$rc" 1
t_check "--json prints the record: each check, the key that verified" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verified"] is False and r["failure"] == "digest-mismatch", r
c = {x["check"]: x for x in r["checks"]}
assert c["signature"]["result"] == "pass" and c["signature"]["key"] == sys.argv[2], c
assert c["signature"]["keys_tried"] == 2
assert c["digest"]["result"] == "fail" and c["digest"]["payload"].startswith("sha256:d29b674e")
assert c["identity"]["result"] == "not-run"
' "$T/rec.json" "$vid"

# trust store: no --key means every *.pub in $SUBSTRATE_STATE/trust/
mkdir -p "$SUBSTRATE_STATE/trust"
cp "$T/k.pub" "$SUBSTRATE_STATE/trust/ours.pub"
cp "$F/cosign.pub" "$SUBSTRATE_STATE/trust/vector.pub"
t_fails "verify uses the trust store without --key" 0 "^Verified OK by key $vid \(.*/trust/vector\.pub\)" \
    "$BIN" verify --offline --payload "$F/payload.json" --signature "$F/signature.b64" \
    --digest "$D" --identity 127.0.0.1:5000/hello
rm "$SUBSTRATE_STATE/trust/vector.pub"
t_fails "  ... and refuses when the signer is not in it" 1 "no trusted key matched" \
    "$BIN" verify --offline --payload "$F/payload.json" --signature "$F/signature.b64" \
    --digest "$D" --identity 127.0.0.1:5000/hello

# a file named on the command line that is not there is an input error (2),
# as the help says ("unreadable key"), not an environment error (3)
t_fails "verify: a missing --key file is an input error" 2 "cannot open .*/nokey\.pub" \
    verify_vec "$F/payload.json" "$F/signature.b64" --any-repo --key "$T/nokey.pub"
t_fails "verify: a missing --payload file is an input error" 2 "cannot open .*/nopayload\.json" \
    verify_vec "$T/nopayload.json" "$F/signature.b64" --any-repo
t_fails "verify: a missing --signature file is an input error" 2 "cannot open .*/nosig\.b64" \
    verify_vec "$F/payload.json" "$T/nosig.b64" --any-repo
t_fails "verify REF: a missing --key file is an input error" 2 "cannot open .*/nokey\.pub" \
    "$BIN" verify "127.0.0.1:1/hello@$D" --key "$T/nokey.pub"
t_fails "key id: a missing file is an input error" 2 "cannot open .*/nokey\.pub" "$BIN" key id "$T/nokey.pub"
t_fails "key trust: a missing file is an input error" 2 "cannot open .*/nokey\.pub" "$BIN" key trust "$T/nokey.pub"
t_fails "sign: a missing --key file is an input error" 2 "cannot open .*/nokey\.key" \
    env SUBSTRATE_PASSPHRASE=x "$BIN" sign --offline --key "$T/nokey.key" --identity 127.0.0.1:5000/hello \
    --digest "$D" --output-payload "$T/never.json"
t_fails "sign: a missing --payload file is an input error" 2 "cannot open .*/nopayload\.json" \
    env SUBSTRATE_PASSPHRASE=pw-1 "$BIN" sign --offline --key "$T/k.key" --payload "$T/nopayload.json"

# ---- keys that must not load anywhere a public key is read ----------------
# One P-256 key written with explicit curve parameters (openssl -param_enc
# explicit) has another SPKI DER, so it would get another key id than the same
# key with the curve named, and `key untrust <id>` could leave it trusted.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ec.pem" 2>/dev/null
openssl ec -in "$T/ec.pem" -pubout -out "$T/named.pub" 2>/dev/null
openssl ec -in "$T/ec.pem" -pubout -param_enc explicit -out "$T/explicit.pub" 2>/dev/null
if cmp -s "$T/named.pub" "$T/explicit.pub" || ! grep -q "BEGIN PUBLIC KEY" "$T/explicit.pub"; then
    t_not_ok "openssl ec -param_enc explicit made a different encoding of the key"
else
    t_check "the same key with the curve named loads" "$BIN" key id "$T/named.pub"
    t_fails "key id refuses explicit curve parameters, naming the fix" 2 \
        "explicit\.pub is a P-256 key with explicit curve parameters.*-param_enc named_curve" \
        "$BIN" key id "$T/explicit.pub"
    t_fails "key trust refuses it" 2 "explicit curve parameters" "$BIN" key trust "$T/explicit.pub"
    t_eq "  ... and adds nothing to the trust store" \
        "$(ls "$SUBSTRATE_STATE/trust" | grep -v '^ours\.pub$')" ""
    t_fails "verify --key refuses it" 2 "explicit curve parameters" \
        verify_vec "$F/payload.json" "$F/signature.b64" --any-repo --key "$T/explicit.pub"
    cp "$T/explicit.pub" "$SUBSTRATE_STATE/trust/planted.pub"
    t_fails "a trust store entry with explicit parameters is refused, naming it" 2 \
        "trust/planted\.pub is a P-256 key with explicit curve parameters" \
        "$BIN" verify --offline --payload "$F/payload.json" --signature "$F/signature.b64" \
        --digest "$D" --any-repo
    rm -f "$SUBSTRATE_STATE/trust/planted.pub"
fi
openssl ecparam -name secp384r1 -genkey -noout -out "$T/p384.pem" 2>/dev/null
openssl ec -in "$T/p384.pem" -pubout -out "$T/p384.pub" 2>/dev/null
t_fails "a P-384 public key is refused, naming P-256" 2 "p384\.pub is an EC key on curve secp384r1; only P-256" \
    "$BIN" key id "$T/p384.pub"
t_fails "  ... by verify --key too" 2 "only P-256" \
    verify_vec "$F/payload.json" "$F/signature.b64" --any-repo --key "$T/p384.pub"

t_fails "key --help documents the passphrase order" 0 "SUBSTRATE_PASSPHRASE.*" "$BIN" key --help
t_fails "verify --help documents the identity policy and exit codes" 0 "compared as written" "$BIN" verify --help
t_done

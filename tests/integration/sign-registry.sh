#!/usr/bin/env bash
# Cosign signatures in a real docker-registry: `substrate sign REF@digest`
# pushes cosign's layout (checked field by field against the vector, and with
# openssl), `substrate verify` fetches and checks it (other key, unsigned
# image, second signer, skopeo-copied signature under both identity
# policies, crafted signatures for the wrong image or over a malformed
# payload), wrong passphrases push nothing, and the trust store commands.
. "$(dirname "$0")/../lib.sh"
F=$TOP/tests/fixtures/cosign
PY=/usr/bin/python3
unset SUBSTRATE_PASSPHRASE

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
H=$("$BIN" build --repo "$R" hello --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); H=${H#*@}
J=$("$BIN" build --repo "$R" job --version 1.0.0 --rev "$SHA" -q | awk '{print $NF}'); J=${J#*@}
if [[ $H != sha256:* || $J != sha256:* ]]; then
    echo "Bail out! could not build and push hello/job ($H, $J)"
    exit 1
fi
HREF=$REG/hello@$H
TAG=sha256-${H#sha256:}.sig
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw-one "$BIN" key generate "$T/k1" >/dev/null
SUBSTRATE_PASSPHRASE=pw-two "$BIN" key generate "$T/k2" >/dev/null
ID1=$("$BIN" key id "$T/k1.pub")
ID2=$("$BIN" key id "$T/k2.pub")
printf pw-one >"$T/pass1"

# Registry reads for the checks below (loopback only, no proxies).
reg() { # reg tags REPO | manifest REPO REF | blob REPO DIGEST
    $PY - "$REG" "$@" <<'PYEOF'
import sys, urllib.request
reg, what, repo = sys.argv[1:4]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
acc = "application/vnd.oci.image.manifest.v1+json"
if what == "tags":
    url = f"http://{reg}/v2/{repo}/tags/list"
elif what == "manifest":
    url = f"http://{reg}/v2/{repo}/manifests/{sys.argv[4]}"
else:
    url = f"http://{reg}/v2/{repo}/blobs/{sys.argv[4]}"
try:
    with op.open(urllib.request.Request(url, headers={"Accept": acc}), timeout=30) as r:
        sys.stdout.buffer.write(r.read())
except urllib.error.HTTPError as e:
    sys.stdout.write(f"HTTP {e.code}")
PYEOF
}

# The number of .sig tags in REPO; "listing failed: ..." when the registry could not
# list them (a dead registry must not read as "nothing was pushed").
sig_tags() {
    $PY - "$REG" "$1" <<'PYEOF' 2>&1
import json, sys, urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    tags = json.load(op.open(f"http://{sys.argv[1]}/v2/{sys.argv[2]}/tags/list", timeout=30))["tags"] or []
except urllib.error.HTTPError as e:
    body = e.read().decode(errors="replace")
    if e.code != 404 or "NAME_UNKNOWN" not in body:
        sys.exit(f"listing failed: HTTP {e.code} {body}")
    tags = []  # no such repository: no tags
except Exception as e:
    sys.exit(f"listing failed: {e}")
print(sum(t.endswith(".sig") for t in tags))
PYEOF
}

# ---- refusals before anything is pushed -------------------------------------
t_fails "a tag-only reference is refused: sign by digest" 2 "sign by digest" \
    env SUBSTRATE_PASSPHRASE=pw-one "$BIN" sign "$REG/hello:1.0.0" --key "$T/k1.key"
t_fails "verify: a tag-only reference is refused" 2 "verify by digest" \
    "$BIN" verify "$REG/hello:1.0.0" --key "$T/k1.pub"
# (one grep per line: the reason is on the error line, the key id on the detail line)
out=$(env SUBSTRATE_PASSPHRASE=not-it "$BIN" sign "$HREF" --key "$T/k1.key" 2>&1); rc=$?
if [ "$rc" = 2 ] && grep -q "wrong passphrase" <<<"$out" && grep -q "k1\.pub is key $ID1" <<<"$out"; then
    t_ok "wrong passphrase is refused, naming the key id"
else t_not_ok "wrong passphrase is refused, naming the key id"; t_diag "exit $rc" "$out"; fi
t_eq "  ... and no .sig tag appeared" "$(sig_tags hello)" 0
t_fails "signing an image that is not in the registry is refused" 2 "not in the registry" \
    "$BIN" sign "$REG/hello@sha256:$(printf x | sha256sum | cut -d' ' -f1)" --key "$T/k1.key" \
    --passphrase-file "$T/pass1"

# ---- sign + verify ------------------------------------------------------------
out=$("$BIN" sign "$HREF" --key "$T/k1.key" --passphrase-file "$T/pass1" 2>&1)
if grep -q "^Signed $HREF with key $ID1" <<<"$out" && grep -q "$REG/hello:$TAG" <<<"$out"; then
    t_ok "sign prints the key id and the signature tag"
else t_not_ok "sign prints the key id and the signature tag"; t_diag "$out"; fi
t_eq "the signature tag is in the image's repository" "$(reg tags hello | grep -o "$TAG")" "$TAG"
t_fails "verify with the signing key: Verified OK, naming the key" 0 \
    "^Verified OK: $HREF signed by key $ID1" "$BIN" verify "$HREF" --key "$T/k1.pub"
t_fails "verify with another key: no trusted key matched" 1 "no trusted key matched.*$ID2" \
    "$BIN" verify "$HREF" --key "$T/k2.pub"
t_fails "an unsigned image: no signature" 1 "no signature" \
    "$BIN" verify "$REG/job@$J" --key "$T/k1.pub"
t_fails "the identity is compared as written: localhost is not 127.0.0.1" 1 "identity mismatch" \
    "$BIN" verify "$HREF" --key "$T/k1.pub" --identity "localhost:${REG#*:}/hello"
t_fails "--repo-prefix accepts a repository under the prefix" 0 "^Verified OK" \
    "$BIN" verify "$HREF" --key "$T/k1.pub" --repo-prefix "$REG"

# ---- identities are compared whole, not as prefixes ---------------------------
"$BIN" push --oci "$SUBSTRATE_STATE/images/hello:1.0.0" "$REG/hello-dev:1" >/dev/null 2>&1
"$BIN" sign "$REG/hello-dev@$H" --key "$T/k1.key" --passphrase-file "$T/pass1" >/dev/null 2>&1
t_fails "a signature for hello-dev verifies hello-dev (the case below is not vacuous)" 0 "^Verified OK" \
    "$BIN" verify "$REG/hello-dev@$H" --key "$T/k1.pub"
t_fails "  ... but not as $REG/hello (identity mismatch)" 1 "identity mismatch.*\"$REG/hello-dev\", not \"$REG/hello\"" \
    "$BIN" verify "$REG/hello-dev@$H" --key "$T/k1.pub" --identity "$REG/hello"
t_fails "a signature for hello does not verify as $REG/hel" 1 "identity mismatch.*not \"$REG/hel\"" \
    "$BIN" verify "$HREF" --key "$T/k1.pub" --identity "$REG/hel"
t_fails "  ... nor as $REG/hello-dev" 1 "identity mismatch.*not \"$REG/hello-dev\"" \
    "$BIN" verify "$HREF" --key "$T/k1.pub" --identity "$REG/hello-dev"

# ---- the artifact, field by field against the cosign vector ------------------
reg manifest hello "$TAG" >"$T/sig1.json"
t_check "our .sig manifest matches the cosign layout field by field" $PY - "$T/sig1.json" \
    "$F/sig-manifest.json" "$F/sig-config.json" "$REG" "$H" <<'PYEOF'
import hashlib, json, sys, urllib.request
ours, vec, vcfg, reg, img = sys.argv[1:6]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
blob = lambda d: op.open(f"http://{reg}/v2/hello/blobs/{d}", timeout=30).read()
m, v = json.load(open(ours)), json.load(open(vec))
assert m["schemaVersion"] == v["schemaVersion"] == 2
assert m["mediaType"] == v["mediaType"], (m["mediaType"], v["mediaType"])
assert m["config"]["mediaType"] == v["config"]["mediaType"]
assert len(m["layers"]) == 1, m["layers"]
l, vl = m["layers"][0], v["layers"][0]
assert l["mediaType"] == vl["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
assert set(l["annotations"]) == set(vl["annotations"]) == {"dev.cosignproject.cosign/signature"}
payload = blob(l["digest"])
assert l["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest(), "layer digest != sha256(payload)"
assert l["size"] == len(payload)
p = json.loads(payload)
assert p == {"critical": {"identity": {"docker-reference": f"{reg}/hello"},
                          "image": {"docker-manifest-digest": img},
                          "type": "cosign container image signature"}, "optional": None}, p
cfg_bytes = blob(m["config"]["digest"])
assert m["config"]["size"] == len(cfg_bytes)
c, vc = json.loads(cfg_bytes), json.load(open(vcfg))
assert set(c) == set(vc), (sorted(c), sorted(vc))
for k in ("architecture", "os", "config", "created", "history"):
    assert c[k] == vc[k], (k, c[k], vc[k])
assert c["rootfs"]["type"] == "layers"
assert c["rootfs"]["diff_ids"] == [l["digest"]], c["rootfs"]
# the same field order as cosign writes (byte-level shape of the vector)
assert list(m) == list(v) and list(l) == list(vl) and list(c) == list(vc), "field order"
PYEOF
$PY - "$T/sig1.json" "$T" "$REG" <<'PYEOF'
import base64, json, sys, urllib.request
m = json.load(open(sys.argv[1])); t = sys.argv[2]; reg = sys.argv[3]
l = m["layers"][0]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
open(f"{t}/p1.json", "wb").write(op.open(f"http://{reg}/v2/hello/blobs/{l['digest']}", timeout=30).read())
open(f"{t}/s1.der", "wb").write(base64.b64decode(l["annotations"]["dev.cosignproject.cosign/signature"]))
PYEOF
t_fails "the pushed payload verifies with openssl dgst -sha256 -verify" 0 "Verified OK" \
    openssl dgst -sha256 -verify "$T/k1.pub" -signature "$T/s1.der" "$T/p1.json"

# ---- signing again; a second signer ------------------------------------------
t_fails "signing again with the same key adds nothing" 0 "^Already signed: $HREF with key $ID1" \
    "$BIN" sign "$HREF" --key "$T/k1.key" --passphrase-file "$T/pass1"
t_eq "  ... still one layer" "$(reg manifest hello "$TAG" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))')" 1
t_fails "sign with a second key" 0 "^Signed $HREF with key $ID2.*" \
    env SUBSTRATE_PASSPHRASE=pw-two "$BIN" sign "$HREF" --key "$T/k2.key"
reg manifest hello "$TAG" >"$T/sig2.json"
t_check "two layers now, the first kept exactly as it was" $PY -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert len(b["layers"]) == 2, b
assert b["layers"][0] == a["layers"][0]
assert b["layers"][1]["annotations"]["dev.cosignproject.cosign/signature"] != a["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
' "$T/sig1.json" "$T/sig2.json"
t_fails "verify OK with the first key alone" 0 "^Verified OK: $HREF signed by key $ID1" \
    "$BIN" verify "$HREF" --key "$T/k1.pub"
t_fails "verify OK with the second key alone" 0 "^Verified OK: $HREF signed by key $ID2" \
    "$BIN" verify "$HREF" --key "$T/k2.pub"
# issue 6 item 8: the other signature is named by its place, its layer digest
# (the same payload, so the same digest) is not repeated, and nothing reads
# like a failure of the verification
out=$("$BIN" verify "$HREF" --key "$T/k2.pub" 2>&1)
LD=$(reg manifest hello "$TAG" | $PY -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
if grep -Eq "^  signature 1 of 2: not needed \(no-key-matched: " <<<"$out" &&
   ! grep -Eqi "refused|error|fail" <<<"$out" && [ "$(grep -o "$LD" <<<"$out" | wc -l)" = 1 ]; then
    t_ok "  ... and the other signature is named, once, as not needed"
else t_not_ok "  ... and the other signature is named, once, as not needed"; t_diag "$out"; fi
SUBSTRATE_PASSPHRASE=pw-3 "$BIN" key generate "$T/k3" >/dev/null
ID3=$("$BIN" key id "$T/k3.pub")
out=$("$BIN" verify "$HREF" --key "$T/k3.pub" 2>&1); rc=$?
t_eq "a third key matches neither signature: exit 1" "$rc" 1
if grep -q "signature 1/2 .*no trusted key matched.*$ID3" <<<"$out" &&
   grep -q "signature 2/2 .*no trusted key matched.*$ID3" <<<"$out" &&
   grep -q "none of the 2 signatures of $HREF verified (1: no-key-matched; 2: no-key-matched)" <<<"$out"; then
    t_ok "  ... each signature's reason is given, naming the key id"
else t_not_ok "  ... each signature's reason is given, naming the key id"; t_diag "$out"; fi

"$BIN" verify "$HREF" --key "$T/k1.pub" --json >"$T/v.json" 2>"$T/v.err"
t_eq "--json exits 0 when verified" "$?" 0
t_check "--json parses and names each check of each signature" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verified"] is True and r["verified_by"] == sys.argv[2], r
assert r["digest_ref"].endswith("@" + sys.argv[3]) and r["digest"] == sys.argv[3]
assert len(r["signatures"]) == 2
ok, other = r["signatures"]
assert [c["check"] for c in ok["checks"]] == ["layer", "signature", "digest", "identity"], ok
assert all(c["result"] == "pass" for c in ok["checks"]), ok["checks"]
assert other["verified"] is False and other["failure"] == "no-key-matched"
assert other["reason"] == "no_trusted_key" and "no trusted key matched" in other["message"], other
' "$T/v.json" "$ID1" "$H"
"$BIN" verify "$REG/job@$J" --key "$T/k1.pub" --json >"$T/v2.json" 2>/dev/null
t_eq "--json refusal exits 1" "$?" 1
t_check "  ... and its record says why" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verified"] is False and r["reason"] == "no_signature" and r["signatures"] == [], r
assert "no signature" in r["message"], r
' "$T/v2.json"

# ---- skopeo copies the signature to another repository ------------------------
mkdir -p "$T/regd"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$REG" >"$T/regd/test.yaml"
if skopeo --registries.d "$T/regd" copy -q --src-tls-verify=false --dest-tls-verify=false \
    "docker://$HREF" "docker://$REG/mirror/hello:copied" >"$T/skopeo.log" 2>&1; then
    reg manifest mirror/hello "$TAG" >"$T/copied.json"
    t_check "skopeo copied the signature artifact (with a rewritten config)" $PY -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert len(b["layers"]) == 2 and [l["digest"] for l in a["layers"]] == [l["digest"] for l in b["layers"]], b
assert a["config"]["digest"] != b["config"]["digest"], "config not rewritten: the test would prove nothing"
' "$T/sig2.json" "$T/copied.json"
    t_fails "the copied signature verifies under --any-repo" 0 "^Verified OK: $REG/mirror/hello@$H signed by key $ID1" \
        "$BIN" verify "$REG/mirror/hello@$H" --key "$T/k1.pub" --any-repo
    t_fails "  ... and is refused under the exact policy (identity mismatch)" 1 "identity mismatch.*$REG/hello" \
        "$BIN" verify "$REG/mirror/hello@$H" --key "$T/k1.pub"
else
    t_not_ok "skopeo copy with sigstore attachments"; t_diag "$(cat "$T/skopeo.log")"
fi

# ---- crafted signatures: for another image; over a malformed payload ---------
# hello under another repository, with a hand-made .sig whose layers are signed by
# the vector key (openssl): one payload names the job image, one is not a payload.
"$BIN" push --oci "$SUBSTRATE_STATE/images/hello:1.0.0" "$REG/crafted:1" >/dev/null 2>&1
"$BIN" sign --offline --key "$F/cosign.key" --passphrase-file "$F/passphrase.txt" \
    --identity "$REG/crafted" --digest "$J" --output-payload "$T/wrong.json" \
    --output-signature "$T/wrong.b64" 2>/dev/null
printf '{"critical":{}}' >"$T/bad.json"
openssl dgst -sha256 -sign "$F/private-key.pkcs8.pem" -out "$T/bad.der" "$T/bad.json"
base64 -w0 "$T/bad.der" >"$T/bad.b64"
$PY - "$REG" crafted "$H" "$T/wrong.json" "$T/wrong.b64" "$T/bad.json" "$T/bad.b64" <<'PYEOF'
import hashlib, json, sys, urllib.request
reg, repo, img = sys.argv[1:4]
pairs = [(open(sys.argv[i], "rb").read(), open(sys.argv[i + 1]).read().strip()) for i in (4, 6)]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    r = op.open(urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", method="POST", data=b""), timeout=30)
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    op.open(urllib.request.Request(loc + ("&" if "?" in loc else "?") + "digest=" + d, method="PUT", data=data,
                                   headers={"Content-Type": "application/octet-stream"}), timeout=30)
    return d
layers = [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(p),
           "digest": put_blob(p), "annotations": {"dev.cosignproject.cosign/signature": s}} for p, s in pairs]
cfg = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers",
                  "diff_ids": [l["digest"] for l in layers]}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(cfg),
                             "digest": put_blob(cfg)}, "layers": layers}).encode()
tag = "sha256-" + img.split(":")[1] + ".sig"
op.open(urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", method="PUT", data=man,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}), timeout=30)
PYEOF
out=$("$BIN" verify "$REG/crafted@$H" --key "$F/cosign.pub" --any-repo 2>&1); rc=$?
t_eq "a valid signature for another image, and one over a malformed payload: exit 1" "$rc" 1
if grep -q "signature 1/2 .*digest mismatch: .*names image $J and the image is $H" <<<"$out" &&
   grep -q "signature 2/2 .*malformed payload" <<<"$out"; then
    t_ok "  ... each refused for its own reason"
else t_not_ok "  ... each refused for its own reason"; t_diag "$out"; fi
"$BIN" verify "$REG/crafted@$H" --key "$F/cosign.pub" --any-repo --json >"$T/c.json" 2>/dev/null
t_check "  ... and --json names both failures" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert [s["failure"] for s in r["signatures"]] == ["digest-mismatch", "malformed-payload"], r
assert [s["reason"] for s in r["signatures"]] == ["digest_mismatch", "malformed_payload"], r
assert r["reason"] == "signatures_refused" and "none of the 2 signatures" in r["message"], r
' "$T/c.json"

# ---- issue 6 items 7 and 8: several REFs, docker://, -o json, no such image ------
NOIMG=$REG/hello@sha256:$(printf '%064d' 0)
t_fails "verify of an image that does not exist says no such image (exit 2), not no signature" 2 \
    "error: no such image: $NOIMG is not in the registry" "$BIN" verify "$NOIMG" --key "$T/k1.pub"
t_fails "verify takes skopeo's docker://REF" 0 "^Verified OK: $HREF signed by key $ID1" \
    "$BIN" verify "docker://$HREF" --key "$T/k1.pub"
t_eq "-o json prints what --json prints" "$("$BIN" verify "$HREF" --key "$T/k1.pub" -o json 2>&1)" \
    "$("$BIN" verify "$HREF" --key "$T/k1.pub" --json 2>&1)"
t_fails "-o takes json or text only" 2 'error: unknown output format "yaml"' \
    "$BIN" verify "$HREF" --key "$T/k1.pub" -o yaml
out=$("$BIN" verify "$HREF" "$REG/job@$J" --key "$T/k1.pub" 2>&1); rc=$?
t_eq "verify of two REFs, one signed and one not: exit 1 (the worst)" "$rc" 1
if grep -q "^Verified OK: $HREF signed by key $ID1" <<<"$out" &&
   grep -q "error: no signature: $REG/job@$J is not signed" <<<"$out"; then
    t_ok "  ... each REF has its own verdict"
else t_not_ok "  ... each REF has its own verdict"; t_diag "$out"; fi
t_fails "verify of two signed REFs: exit 0" 0 "Verified OK: $HREF.*Verified OK: $HREF" \
    bash -c "'$BIN' verify '$HREF' 'docker://$HREF' --key '$T/k1.pub' | tr '\n' ' '"
"$BIN" verify "$HREF" "$REG/job@$J" "$NOIMG" "$REG/hello:1.0.0" --key "$T/k1.pub" --json >"$T/m.json" 2>/dev/null
t_eq "  ... with an image that does not exist and a tag-only REF too: exit 2 (the worst)" "$?" 2
t_check "  ... and --json is an array of one record per REF, in order, each with its exit code" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert isinstance(r, list) and len(r) == 4, r
assert [x["exit_code"] for x in r] == [0, 1, 2, 2], r
assert [x["verified"] for x in r] == [True, False, False, False], r
assert r[0]["digest_ref"] == sys.argv[2] and r[0]["verified_by"] == sys.argv[3], r[0]
assert r[1]["reason"] == "no_signature" and "no signature" in r[1]["message"], r
assert r[2]["reason"] == "no_such_image" and "no such image" in r[2]["message"], r
assert r[3]["digest_ref"] == sys.argv[4] + "/hello:1.0.0" and r[3]["message"], r[3]
' "$T/m.json" "$HREF" "$ID1" "$REG"

# ---- trust store ---------------------------------------------------------------
t_fails "verify without --key and an empty trust store is a clear error" 3 "trust store.*does not exist" \
    "$BIN" verify "$HREF"
t_fails "key trust adds the public key under its key id" 0 "^Trusted key $ID2: .*/trust/${ID2#sha256:}\.pub" \
    "$BIN" key trust "$T/k2.pub"
t_eq "  ... mode 0644" "$(stat -c %a "$SUBSTRATE_STATE/trust/${ID2#sha256:}.pub")" 644
t_fails "key list shows it" 0 "^$ID2 " "$BIN" key list
t_fails "verify uses the trust store" 0 "^Verified OK: $HREF signed by key $ID2" "$BIN" verify "$HREF"
t_fails "key untrust removes it" 0 "No longer trusted: key $ID2" "$BIN" key untrust "$ID2"
"$BIN" key trust "$T/k3.pub" >/dev/null
t_fails "  ... then the trust store (k3 only) refuses the image" 1 "none of the 2 signatures" \
    "$BIN" verify "$HREF"

# ---- a signature tag that moves between sign's read and its write -------------
# (another signer in between): refused, not overwritten; the hostile registry
# answers the read with "no such tag" and the check before the write with
# another signer's manifest.
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
$PY "$TOP/tests/tools/hostile-registry.py" --port-file "$T/hostile.port" --info "$T/hostile.json" \
    >"$T/hostile.log" 2>&1 &
hpid=$!
t_on_exit "kill $hpid"
if wait_file "$T/hostile.port"; then
    HR=127.0.0.1:$(cat "$T/hostile.port")
    read -r HM OTHER < <($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["manifest"], d["claimed"])' "$T/hostile.json")
    htag=sha256-${HM#sha256:}.sig
    tag_digest() { curl -sfI "http://$HR/v2/moving-tag/manifests/$1" | tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip'; }
    t_eq "the moved tag holds the other signer's manifest (the harness works)" "$(tag_digest "$htag")" "$OTHER"
    t_fails "sign refuses to replace a signature tag that moved meanwhile (exit 3)" 3 \
        "signatures of moving-tag@$HM changed meanwhile.*nothing was replaced" \
        "$BIN" sign "$HR/moving-tag@$HM" --key "$T/k1.key" --passphrase-file "$T/pass1"
    t_eq "  ... and the other signer's manifest is still there" "$(tag_digest "$htag")" "$OTHER"
    t_fails "sign still works on an honest repository of that registry" 0 "^Signed $HR/good@$HM" \
        "$BIN" sign "$HR/good@$HM" --key "$T/k1.key" --passphrase-file "$T/pass1"
    printf '{"note": "x"}' >"$T/pred.json"
    atag=sha256-${HM#sha256:}.att
    t_fails "attest refuses to replace an attestation tag that moved meanwhile (exit 3)" 3 \
        "attestations of moving-tag@$HM changed meanwhile.*nothing was replaced" \
        "$BIN" attest "$HR/moving-tag@$HM" --key "$T/k1.key" --passphrase-file "$T/pass1" \
        --predicate "$T/pred.json"
    t_eq "  ... and the other signer's manifest is still there" "$(tag_digest "$atag")" "$OTHER"
else
    t_not_ok "hostile registry started"; t_diag "$(cat "$T/hostile.log")"
fi
t_done

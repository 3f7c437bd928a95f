#!/usr/bin/env bash
# SLSA provenance: build-sign-push attaches an in-toto v1 statement in a DSSE
# envelope under sha256-<hex>.att (as `cosign attest` stores it); `verify
# --provenance` accepts it and names the source commit, spec and build
# command; the envelope's signature checks out with openssl alone; an image
# without provenance, provenance signed by an untrusted key, and provenance
# about another image are refused.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
unset SUBSTRATE_PASSPHRASE
FIX=$TOP/tests/fixtures/cosign

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
S=$SUBSTRATE_STATE
out=$("$BIN" build-sign-push 1.0.0 --repo "$R" --single-build -q 2>"$T/err")
t_eq "build-sign-push exits 0" "$?" 0 || t_diag "$(cat "$T/err")"
hello=$(grep "/hello:" <<<"$out" | awk '{print $NF}'); hd=${hello#*@}
job=$(grep "/job:" <<<"$out" | awk '{print $NF}'); jd=${job#*@}

v=$("$BIN" verify "$hello" --provenance 2>&1)
t_eq "verify --provenance accepts a released image" "$?" 0
grep -q "source:  (no source URI recorded) @ $SHA" <<<"$v" && grep -q "spec:    platform/images/hello/image.json (sha256:" <<<"$v" &&
    grep -q "build:   make -s -f platform/images/hello/Makefile" <<<"$v" &&
    t_ok "it names the source commit, the spec and its digest, the build command" || { t_not_ok "it names source, spec, build"; t_diag "$v"; }
specd=$(git -C "$R" show "$SHA:platform/images/hello/image.json" | sha256sum | cut -d' ' -f1)
grep -q "(sha256:$specd)" <<<"$v" && t_ok "the spec digest is that of the file at the commit" || { t_not_ok "spec digest matches the committed file"; t_diag "$v" "want $specd"; }
jc=$("$BIN" verify "$hello" --provenance --json 2>/dev/null | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["provenance"]["commit"], d["provenance"]["verified"])')
t_eq "--json carries the provenance record" "$jc" "$SHA True"

# the artifact as cosign attest lays it out, and the DSSE signature checked by openssl
raw=$(skopeo inspect --tls-verify=false --raw "docker://$REG/hello:sha256-${hd#sha256:}.att" 2>&1)
fields=$($PY -c '
import json,sys
m=json.loads(sys.argv[1]); l=m["layers"][0]
print(m["mediaType"], l["mediaType"], l["annotations"]["predicateType"], repr(l["annotations"]["dev.cosignproject.cosign/signature"]))' "$raw" 2>&1)
t_eq "attestation manifest: OCI, a DSSE layer annotated with its predicateType" "$fields" \
    "application/vnd.oci.image.manifest.v1+json application/vnd.dsse.envelope.v1+json https://slsa.dev/provenance/v1 ''"
t_check "the attestation manifest validates against the OCI schema" bash -c "printf '%s' '$raw' > '$T/att.json' && '$TOP/tests/tools/oci-schema-check' manifest '$T/att.json'"
ld=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["layers"][0]["digest"])' "$raw")
curl -sf "http://$REG/v2/hello/blobs/$ld" -o "$T/env.json"
$PY - "$T" <<'PYEOF'
import base64, json, sys
t = sys.argv[1]
env = json.load(open(f"{t}/env.json"))
body = base64.b64decode(env["payload"])
typ = env["payloadType"].encode()
open(f"{t}/pae", "wb").write(b"DSSEv1 %d %s %d %s" % (len(typ), typ, len(body), body))
open(f"{t}/sig.der", "wb").write(base64.b64decode(env["signatures"][0]["sig"]))
open(f"{t}/statement.json", "wb").write(body)
PYEOF
t_fails "openssl verifies the DSSE signature over the PAE with the platform key" 0 "Verified OK" \
    openssl dgst -sha256 -verify "$S/keys/cosign.pub" -signature "$T/sig.der" "$T/pae"
st=$($PY -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["_type"], s["predicateType"], s["subject"][0]["digest"]["sha256"])' "$T/statement.json")
t_eq "the statement is in-toto v1 SLSA provenance about the image" "$st" \
    "https://in-toto.io/Statement/v1 https://slsa.dev/provenance/v1 ${hd#sha256:}"
grep -q "pkg:deb/debian/gcc-12@" "$T/statement.json" && t_ok "the toolchain packages are resolved dependencies" || t_not_ok "toolchain packages recorded"

# refusals
"$BIN" build hello --repo "$R" --version 2.0.0 --rev "$SHA" -q >/dev/null 2>&1
h2=$("$BIN" inspect "$REG/hello:2.0.0" --json 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
"$BIN" sign "$REG/hello@$h2" --key "$S/keys/cosign.key" >/dev/null 2>&1
t_check "an image signed without provenance verifies without --provenance" "$BIN" verify "$REG/hello@$h2"
t_fails "... and is refused with --provenance (no provenance)" 1 "no provenance" "$BIN" verify "$REG/hello@$h2" --provenance
"$BIN" verify "$REG/hello@$h2" --provenance --json >"$T/np.json" 2>/dev/null
t_check "  ... and --json gives the reason code no_provenance" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verified"] is False and r["reason"] == "no_provenance", r
assert r["provenance"]["reason"] == "no_provenance" and "no provenance" in r["provenance"]["message"], r
assert r["signatures"][0]["verified"] is True, r
' "$T/np.json"

# provenance signed by a key the verifier does not trust: sign hello also with the fixture key,
# then trust only the fixture key
"$BIN" sign "$hello" --key "$FIX/cosign.key" --passphrase-file "$FIX/passphrase.txt" >/dev/null 2>&1
t_check "hello verifies with the fixture key alone (its signature layer)" "$BIN" verify "$hello" --key "$FIX/cosign.pub"
t_fails "its provenance is refused under the fixture key alone (another key signed it)" 1 "no trusted key matched" \
    "$BIN" verify "$hello" --key "$FIX/cosign.pub" --provenance

# provenance about ANOTHER image, validly signed by a trusted key, attached to job
$PY - "$REG" "$jd" "$hd" "$FIX/private-key.pkcs8.pem" "$T" <<'PYEOF'
import base64, hashlib, json, subprocess, sys, urllib.request
reg, job, other, key, t = sys.argv[1:]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
st = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": f"{reg}/hello", "digest": {"sha256": other.split(":")[1]}}],
                 "predicateType": "https://slsa.dev/provenance/v1",
                 "predicate": {"buildDefinition": {"externalParameters": {"source": {"digest": {"gitCommit": "0"*40}}}}}}).encode()
typ = b"application/vnd.in-toto+json"
open(f"{t}/forged.pae", "wb").write(b"DSSEv1 %d %s %d %s" % (len(typ), typ, len(st), st))
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, f"{t}/forged.pae"], check=True, capture_output=True).stdout
env = json.dumps({"payloadType": typ.decode(), "payload": base64.b64encode(st).decode(),
                  "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}).encode()
cfg = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    r = op.open(urllib.request.Request(f"http://{reg}/v2/job/blobs/uploads/", method="POST"), timeout=30)
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    op.open(urllib.request.Request(f"{loc}{'&' if '?' in loc else '?'}digest={d}", data=data, method="PUT",
            headers={"Content-Type": "application/octet-stream"}), timeout=30)
    return d
ed, cd = put_blob(env), put_blob(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": ed, "size": len(env),
                "annotations": {"predicateType": "https://slsa.dev/provenance/v1", "dev.cosignproject.cosign/signature": ""}}]}).encode()
op.open(urllib.request.Request(f"http://{reg}/v2/job/manifests/sha256-{job.split(':')[1]}.att", data=man, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}), timeout=30)
PYEOF
"$BIN" sign "$job" --key "$FIX/cosign.key" --passphrase-file "$FIX/passphrase.txt" >/dev/null 2>&1
t_fails "provenance about another image is refused, even when a trusted key signed it" 1 "about another image" \
    "$BIN" verify "$job" --key "$FIX/cosign.pub" --provenance
t_fails "--provenance does not combine with --offline" 2 "offline" "$BIN" verify --offline --provenance --key "$FIX/cosign.pub" \
    --payload "$FIX/payload.json" --signature "$FIX/signature.b64" --digest "$(cat "$FIX/image-manifest.digest")" --any-repo
t_done

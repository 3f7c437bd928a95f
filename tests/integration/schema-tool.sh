#!/usr/bin/env bash
# tests/tools/oci-schema-check can say no: real documents pass, deliberately
# broken copies fail with the reason, a layout's blobs are checked against
# their descriptors, and a missing validator is an error, never a pass.
. "$(dirname "$0")/../lib.sh"

CHK=$TOP/tests/tools/oci-schema-check
PY=/usr/bin/python3
FX=$TOP/tests/fixtures/cosign

if ! $PY -c 'import jsonschema' 2>/dev/null; then
    # the checker must refuse loudly; that much we can still test
    t_fails "without jsonschema the checker exits 3" 3 "jsonschema" "$CHK" manifest "$FX/image-manifest.json"
    t_skip "schema checks" "python3-jsonschema is not installed for $PY (apt-get install python3-jsonschema)"
    t_done
    exit 0
fi

t_check "cosign fixture manifest is a valid manifest" "$CHK" manifest "$FX/image-manifest.json"
t_check "cosign fixture config is a valid config" "$CHK" config "$FX/image-config.json"
t_check "signature manifests (ours and skopeo's) are valid" \
    "$CHK" manifest "$FX/sig-manifest.json" "$FX/skopeo-copied-sig-manifest.json"
t_fails "a manifest is not an index" 1 "manifests' is a required property" "$CHK" index "$FX/image-manifest.json"

# broken copies of the fixture manifest: FILE EXPR, EXPR edits the dict m
mutate() {
    $PY - "$FX/image-manifest.json" "$T/$1" "$2" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(m, open(sys.argv[2], "w"))
EOF
}
mutate mediatype.json 'm["mediaType"] = 5'
mutate negsize.json 'm["config"]["size"] = -1'
mutate baddigest.json 'm["layers"][0]["digest"] = "sha256 d235bd857711235f6e30"'
mutate shortdigest.json 'm["layers"][0]["digest"] = "sha256:d235bd857711235f6e30"'
mutate noconfig.json 'del m["config"]'
mutate version.json 'm["schemaVersion"] = 1'

t_fails "mediaType of the wrong type fails" 1 "mediatype.json: INVALID: .*\.mediaType: 5 is not of type 'string'" \
    "$CHK" manifest "$T/mediatype.json"
t_fails "negative size fails" 1 "negsize.json: INVALID: .*\.config\.size: -1 is less than the minimum of 0" \
    "$CHK" manifest "$T/negsize.json"
t_fails "malformed digest fails (schema pattern)" 1 "baddigest.json: INVALID: .*\.layers\[0\]\.digest: .*does not match" \
    "$CHK" manifest "$T/baddigest.json"
t_fails "sha256 digest of the wrong length fails (spec rule)" 1 "shortdigest.json: INVALID: .*sha256 needs 64" \
    "$CHK" manifest "$T/shortdigest.json"
t_fails "missing config fails" 1 "noconfig.json: INVALID: .*'config' is a required property" \
    "$CHK" manifest "$T/noconfig.json"
t_fails "schemaVersion 1 fails" 1 "version.json: INVALID: .*schemaVersion" "$CHK" manifest "$T/version.json"
t_fails "one bad file among good ones fails the run and is named" 1 "negsize.json: INVALID" \
    "$CHK" manifest "$FX/image-manifest.json" "$T/negsize.json"

printf '{"schemaVersion":2,"schemaVersion":2}' > "$T/dup.json"
t_fails "duplicate keys fail" 1 "dup.json: INVALID: duplicate key" "$CHK" manifest "$T/dup.json"
printf '{"schemaVersion":' > "$T/trunc.json"
t_fails "truncated JSON fails" 1 "trunc.json: INVALID: .*not valid JSON" "$CHK" manifest "$T/trunc.json"
t_fails "a missing file fails" 1 "nothere.json: INVALID: cannot read" "$CHK" config "$T/nothere.json"

# configs
$PY - "$FX/image-config.json" "$T/badcfg.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["rootfs"]["type"] = "tarballs"
json.dump(c, open(sys.argv[2], "w"))
EOF
t_fails "config with a bad rootfs type fails" 1 "badcfg.json: INVALID: .*rootfs\.type" "$CHK" config "$T/badcfg.json"
$PY - "$FX/image-config.json" "$T/badtime.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["history"][0]["created"] = "2026-13-28T12:48:46Z"
json.dump(c, open(sys.argv[2], "w"))
EOF
t_fails "config with an impossible date-time fails" 1 "badtime.json: INVALID: .*history\[0\]\.created: .* is not a 'date-time'" \
    "$CHK" config "$T/badtime.json"

# runtime-spec config.json (runtime-config): runc's own template passes, broken copies fail
if command -v runc >/dev/null 2>&1 && (cd "$T" && runc spec 2>/dev/null); then
    t_check "runc's config.json template is a valid runtime-config" "$CHK" runtime-config "$T/config.json"
    $PY - "$T/config.json" "$T/badrt.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["user"]["uid"] = -1
c["mounts"][0]["options"] = "nosuid"
json.dump(c, open(sys.argv[2], "w"))
EOF
    t_fails "a runtime config with a negative uid and a string of options fails" 1 \
        "badrt.json: INVALID: .*\.process\.user\.uid: -1 is less than the minimum of 0" \
        "$CHK" runtime-config "$T/badrt.json"
    t_fails "an image manifest is not a runtime config" 1 "INVALID: runtime-config schema" \
        "$CHK" runtime-config "$FX/image-manifest.json"
    t_fails "missing runtime schema folder exits 3" 3 "schema folder .* is missing" \
        env OCI_RUNTIME_SCHEMA_DIR="$T/no-schemas" "$CHK" runtime-config "$T/config.json"
else
    t_skip "runtime-config checks" "runc is not installed (its template is the reference document)"
fi

# usage and environment errors are not passes
t_fails "unknown kind is a usage error" 2 "unknown kind" "$CHK" manifesto "$FX/image-manifest.json"
t_fails "no files is a usage error" 2 "needs at least one FILE" "$CHK" manifest
t_fails "missing jsonschema exits 3 (never a silent pass)" 3 "python3-jsonschema is not available" \
    $PY -I -S "$CHK" manifest "$FX/image-manifest.json"
t_fails "missing schema folder exits 3" 3 "schema folder .* is missing" \
    env OCI_SCHEMA_DIR="$T/no-schemas" "$CHK" manifest "$FX/image-manifest.json"

# a hand-made OCI layout: index -> manifest -> config + layer
L=$T/layout
layer=$($PY - "$L" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
os.makedirs(os.path.join(root, "blobs", "sha256"))
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(root, "blobs", "sha256", d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    ti = tarfile.TarInfo("hello.txt"); body = b"hello\n"; ti.size = len(body)
    t.addfile(ti, io.BytesIO(body))
tar = buf.getvalue()
layer = put(gzip.compress(tar, mtime=0))
cfg = put(json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode())
man = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": dict(cfg, mediaType="application/vnd.oci.image.config.v1+json"),
                      "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}).encode())
json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [dict(man, mediaType="application/vnd.oci.image.manifest.v1+json",
                              annotations={"org.opencontainers.image.ref.name": "t"})]},
          open(os.path.join(root, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(root, "oci-layout"), "w"))
print(layer["digest"].split(":")[1])
EOF
)
out=$("$CHK" --layout "$L" 2>&1); rc=$?
t_eq "hand-made layout validates" "$rc" 0
t_eq "layout check reached the manifest, the config and the layer" \
    "$(grep -c -e 'valid manifest' -e 'valid config' -e 'layers\[0\]: blob .* ok' <<<"$out")" 3

cp -a "$L" "$T/l-corrupt"
printf 'x' >> "$T/l-corrupt/blobs/sha256/$layer"
t_fails "a corrupted layer blob fails the layout" 1 "layers\[0\]: INVALID: blob .* has digest sha256:.*descriptor says" \
    "$CHK" --layout "$T/l-corrupt"

cp -a "$L" "$T/l-size"
$PY - "$T/l-size/index.json" <<'EOF'
import json, sys
i = json.load(open(sys.argv[1])); i["manifests"][0]["size"] += 1
json.dump(i, open(sys.argv[1], "w"))
EOF
t_fails "a wrong size in index.json fails the layout" 1 "manifests\[0\]: INVALID: blob .* bytes, descriptor says" \
    "$CHK" --layout "$T/l-size"

cp -a "$L" "$T/l-version"
echo '{"imageLayoutVersion":"2.0.0"}' > "$T/l-version/oci-layout"
t_fails "an unknown imageLayoutVersion fails" 1 "oci-layout: INVALID: .*imageLayoutVersion" \
    "$CHK" --layout "$T/l-version"

cp -a "$L" "$T/l-missing"
rm "$T/l-missing/blobs/sha256/$layer"
t_fails "a missing blob fails the layout" 1 "INVALID: blob sha256:$layer missing" "$CHK" --layout "$T/l-missing"

# umoci's output, when umoci is here, validates too (another writer than ours)
if command -v umoci >/dev/null 2>&1; then
    echo hi > "$T/f.txt"
    if umoci init --layout "$T/umoci" >/dev/null 2>&1 && umoci new --image "$T/umoci:t" >/dev/null 2>&1 &&
        umoci insert --image "$T/umoci:t" "$T/f.txt" /f.txt >/dev/null 2>&1; then
        t_check "umoci's layout validates" "$CHK" --layout "$T/umoci"
    else
        t_not_ok "umoci could not build a test layout"
    fi
else
    t_skip "umoci's layout validates" "umoci not installed"
fi

# offline: the checker resolves every schema reference without a network
if unshare -n true 2>/dev/null; then
    t_check "validates with no network at all (unshare -n)" unshare -n "$CHK" manifest "$FX/image-manifest.json"
    t_fails "and still fails bad input with no network" 1 "INVALID" unshare -n "$CHK" manifest "$T/mediatype.json"
else
    t_skip "validates with no network at all" "cannot create a network namespace here"
    t_skip "and still fails bad input with no network" "cannot create a network namespace here"
fi

t_done

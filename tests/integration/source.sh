#!/usr/bin/env bash
# The source URI in image labels and provenance is true (issue 6 item 9): it
# comes from one committed place (platform/source.json, or an image spec's
# "source"), or is left out; nothing a build writes names a made-up location
# (the old https://github.com/substrate-dev/... URL).
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
unset SUBSTRATE_PASSPHRASE

git clone -q "$TOP" "$T/repo"
R=$T/repo
git -C "$R" -c user.name=t -c user.email=t@t commit -q --allow-empty -m "test base"
commit() { git -C "$R" add -A && git -C "$R" -c user.name=t -c user.email=t@t commit -qm "$1"; git -C "$R" rev-parse HEAD; }
t_registry
REG=$SUBSTRATE_REGISTRY
S=$SUBSTRATE_STATE

# Every provenance statement stored for REPO@DIGEST (sha256-<hex>.att), one JSON a line.
statements() {
    $PY - "$REG" "$1" "$2" <<'EOF'
import base64, json, sys, urllib.request
reg, repo, digest = sys.argv[1:4]
def get(path, accept=None):
    req = urllib.request.Request("http://%s/v2/%s/%s" % (reg, repo, path))
    if accept: req.add_header("Accept", accept)
    return urllib.request.urlopen(req, timeout=30).read()
m = json.loads(get("manifests/sha256-%s.att" % digest.split(":")[1], "application/vnd.oci.image.manifest.v1+json"))
for l in m["layers"]:
    env = json.loads(get("blobs/" + l["digest"]))
    print(base64.b64decode(env["payload"]).decode())
EOF
}
config_of() { # repo digest -> the image config JSON
    curl -sf "http://$REG/v2/$1/blobs/$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$REG/v2/$1/manifests/$2" | $PY -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')"
}
label() { config_of "$1" "$2" | $PY -c 'import json,sys; print(json.load(sys.stdin)["config"]["Labels"].get("org.opencontainers.image.source","<none>"))'; }
field() { $PY -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d.get(k) if isinstance(d, dict) else None
print("<none>" if d is None else d)' "$1"; }

t_eq "no committed file names substrate-dev" "$(git -C "$R" grep -l substrate-dev -- platform include lib src | wc -l)" 0

# ---- nothing configured: no source label, no source URI in the provenance ----
out=$("$BIN" build-sign-push 1.0.0 --repo "$R" --single-build -q 2>"$T/err")
t_eq "build-sign-push of the tree exits 0" "$?" 0 || t_diag "$(cat "$T/err")"
hello=$(grep "/hello:" <<<"$out" | awk '{print $NF}'); hd=${hello#*@}
job=$(grep "/job:" <<<"$out" | awk '{print $NF}'); jd=${job#*@}
st_h=$(statements hello "$hd"); st_j=$(statements job "$jd")
[ -n "$st_h" ] && [ -n "$st_j" ] && t_ok "the provenance statements can be read back" || t_not_ok "the provenance statements can be read back"
n=$(grep -rl substrate-dev "$S/images" 2>/dev/null | wc -l)
t_eq "no image layout the build wrote names substrate-dev" "$n" 0
t_eq "no provenance statement names substrate-dev" "$(grep -c substrate-dev <<<"$st_h$st_j")" 0
t_eq "hello: no org.opencontainers.image.source label when none is configured" "$(label hello "$hd")" "<none>"
t_eq "hello: the provenance names no source URI (only the commit)" \
    "$(field predicate.buildDefinition.externalParameters.source.uri <<<"$st_h")" "<none>"
t_eq "hello: the provenance still names the commit" \
    "$(field predicate.buildDefinition.externalParameters.source.digest.gitCommit <<<"$st_h")" "$(git -C "$R" rev-parse HEAD)"
v=$("$BIN" verify "$hello" --provenance 2>&1)
grep -q "source:  (no source URI recorded) @ " <<<"$v" && t_ok "verify --provenance says no source URI was recorded" ||
    { t_not_ok "verify --provenance says no source URI was recorded"; t_diag "$v"; }

# ---- configured once in platform/source.json: label and provenance name it ----
URL=https://example.test/org/substrate.git
printf '{"source": "%s"}\n' "$URL" >"$R/platform/source.json"
SHA=$(commit "name the source")
out=$("$BIN" build-sign-push 1.0.1 --repo "$R" --single-build -q 2>"$T/err")
t_eq "build-sign-push with platform/source.json exits 0" "$?" 0 || t_diag "$(cat "$T/err")"
hello=$(grep "/hello:" <<<"$out" | awk '{print $NF}'); hd=${hello#*@}
job=$(grep "/job:" <<<"$out" | awk '{print $NF}'); jd=${job#*@}
t_eq "hello: the label names the configured source" "$(label hello "$hd")" "$URL"
t_eq "job: the label names the configured source" "$(label job "$jd")" "$URL"
st_h=$(statements hello "$hd")
t_eq "hello: the provenance's externalParameters.source.uri is the configured source" \
    "$(field predicate.buildDefinition.externalParameters.source.uri <<<"$st_h")" "$URL"
grep -q "\"uri\": *\"git+$URL\"" <<<"$st_h" && t_ok "hello: its resolvedDependencies name git+$URL" ||
    { t_not_ok "hello: its resolvedDependencies name git+$URL"; t_diag "$st_h"; }
v=$("$BIN" verify "$hello" --provenance 2>&1)
grep -q "source:  $URL @ $SHA" <<<"$v" && t_ok "verify --provenance names the configured source and commit" ||
    { t_not_ok "verify --provenance names the configured source and commit"; t_diag "$v"; }

# ---- an image spec's own "source" wins; the label cannot be set around it; bad URIs ----
spec() { mkdir -p "$R/platform/images/$1"; printf '%s\n' "$2" >"$R/platform/images/$1/image.json"; commit "spec $1"; }
b() { "$BIN" build --repo "$R" "$@" --version 1 --no-push; }
s=$(spec own '{"name":"own","source":"https://example.test/other.git","dirs":[{"path":"/d","mode":"0755"}]}')
b own --rev "$s" -q >/dev/null 2>"$T/err" || t_diag "$(cat "$T/err")"
lay=$S/images/own
cfg=$($PY - "$lay" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][-1]["digest"].split(":")[1]))
print(json.load(open(d + "/blobs/sha256/" + m["config"]["digest"].split(":")[1]))["config"]["Labels"]["org.opencontainers.image.source"])
EOF
)
t_eq "an image spec's own \"source\" is used for that image" "$cfg" "https://example.test/other.git"
s=$(spec sneaky '{"name":"sneaky","dirs":[{"path":"/d","mode":"0755"}],"config":{"labels":{"org.opencontainers.image.source":"https://github.com/substrate-dev/substrate"}}}')
t_fails "a spec setting the source label itself is refused, pointing at \"source\"" 2 \
    'org.opencontainers.image.source.*"source"' b sneaky --rev "$s"
s=$(spec creds '{"name":"creds","source":"https://user:token@example.test/x.git","dirs":[{"path":"/d","mode":"0755"}]}')
t_fails "a source URI with credentials is refused" 2 'user information' b creds --rev "$s"
printf '{"source": "not a uri"}\n' >"$R/platform/source.json"
s=$(spec plain '{"name":"plain","dirs":[{"path":"/d","mode":"0755"}]}')
t_fails "a platform/source.json that is not a URI is refused, naming the file" 2 \
    'platform/source.json.*not a URI' b plain --rev "$s"

t_done

#!/usr/bin/env bash
# substrate render k8s, end to end with the real registry and real
# signatures: the reference manifest and the reference jobspec (copies
# pinned to the digests built here) match the golden files
# tests/fixtures/k8s/*.golden.yaml once the variable parts are replaced by
# placeholders (K8S_UPDATE_GOLDEN=1 rewrites them); -o json and -o yaml hold
# the same objects; the output is byte-identical run to run; the
# ClusterImagePolicy holds the trusted key's PEM; --with-runtime-class adds
# the RuntimeClass objects; what does not map is listed on stderr; refused,
# with nothing on stdout: an unsigned jobspec, one signed by an untrusted
# key, network: host, an egress entry by name, an unsigned image. The
# rendered objects go through tests/tools/k8s-validate when it is there.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
G=$TOP/tests/fixtures/k8s
unset SUBSTRATE_PASSPHRASE
if ! $PY -c 'import yaml' 2>/dev/null; then
    t_skip "k8s-render" "python3-yaml is not installed (scripts/install-deps)"; t_done; exit 0
fi

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
build() { "$BIN" build --repo "$R" "$1" --version "$2" --rev "$SHA" -q | awk '{print $NF}'; }
H=$(build hello 1.0.0); H=${H#*@}
J=$(build job 1.0.0); J=${J#*@}
HU=$(build hello 2.0.0); HU=${HU#*@} # another digest of hello, never signed
if [[ $H != sha256:* || $J != sha256:* || $HU != sha256:* || $HU == "$H" ]]; then
    echo "Bail out! could not build hello/job ($H, $J, $HU)"; exit 1
fi
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k2" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
KID=$("$BIN" key id "$T/k1.pub")
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/hello@$H" --key "$T/k1.key" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/job@$J" --key "$T/k1.key" >/dev/null
signblob() { SUBSTRATE_PASSPHRASE=pw "$BIN" sign-blob "$1" --key "$T/$2.key" >/dev/null; }

# the references, pinned to what was built here (the registry's host:port too)
mkdir -p m
sed "s|^image: .*|image: $REG/hello@$H|" "$TOP/platform/manifests/hello.service.yaml" >m/hello.service.yaml
sed "s|\"image\": \"[^\"]*\"|\"image\": \"$REG/job@$J\"|" "$TOP/platform/sandbox/jobspec.example.json" >m/job.json
signblob m/job.json k1
MD=sha256:$(sha256sum m/hello.service.yaml | cut -d' ' -f1)
JD=sha256:$(sha256sum m/job.json | cut -d' ' -f1)

render() { "$BIN" render k8s "$@"; }
# normalize FILE IMAGE_DIGEST DOC_DIGEST DOC_PLACEHOLDER: the variable parts -> placeholders
normalize() {
    $PY - "$T/k1.pub" "$REG" "$2" "$3" "$KID" "$1" "$4" <<'EOF'
import sys
pub, reg, img, doc, kid, path, docname = sys.argv[1:8]
text = open(path).read()
body = [l for l in open(pub).read().splitlines() if l and not l.startswith("-----")]
lines = []
for l in text.splitlines():
    if l.strip() in body:
        ind = l[: len(l) - len(l.lstrip())]
        if not lines or lines[-1] != ind + "@PUBKEY@":
            lines.append(ind + "@PUBKEY@")
        continue
    lines.append(l)
text = "\n".join(lines) + "\n"
for a, b in ((kid, "@KEY_ID@"), ("key-" + kid[7:23], "key-@KEY_ID_16@"), (doc, docname), (img, "@IMAGE_DIGEST@"),
             (reg, "@REGISTRY@")):
    text = text.replace(a, b)
sys.stdout.write(text)
EOF
}
golden() { # golden NAME FILE DIGEST DOC_DIGEST DOC_PLACEHOLDER
    local out
    out=$(normalize "$2" "$3" "$4" "$5")
    if [ "${K8S_UPDATE_GOLDEN:-0}" = 1 ]; then
        mkdir -p "$G" && printf '%s\n' "$out" >"$G/$1.golden.yaml"
        t_ok "$1: golden file rewritten (K8S_UPDATE_GOLDEN=1)"
        return
    fi
    if diff -u "$G/$1.golden.yaml" <(printf '%s\n' "$out") >"$T/$1.diff"; then t_ok "$1: matches $1.golden.yaml"
    else t_not_ok "$1: matches $1.golden.yaml"; t_diag "$(head -60 "$T/$1.diff")"; fi
}

# ---- the reference manifest and jobspec ----
render m/hello.service.yaml >hello.yaml 2>hello.err; rc=$?
t_eq "the reference manifest renders (exit 0)" "$rc" 0
golden hello hello.yaml "$H" "$MD" @MANIFEST_DIGEST@
render m/job.json >job.yaml 2>job.err; rc=$?
t_eq "the signed reference jobspec renders (exit 0)" "$rc" 0
golden jobspec job.yaml "$J" "$JD" @JOBSPEC_DIGEST@
t_eq "the placeholders replaced real values (registry, both digests, key id)" \
    "$(grep -c "$REG/hello@$H" hello.yaml) $(grep -c "$MD" hello.yaml) $(grep -c "$JD" job.yaml) $(grep -c "$KID" job.yaml)" \
    "1 4 3 7"

render m/hello.service.yaml m/job.json >both.yaml 2>/dev/null
render m/hello.service.yaml m/job.json >both2.yaml 2>/dev/null
t_check "deterministic: the same files give byte-identical output" cmp both.yaml both2.yaml
t_eq "  ... and two files give the objects of each, in order" "$({ cat hello.yaml; echo ---; cat job.yaml; } | md5sum)" \
    "$(md5sum <both.yaml)"
render -o json m/hello.service.yaml m/job.json >both.json 2>/dev/null
t_eq "-o json and -o yaml describe the same objects (a v1 List of 7)" "$($PY - <<'EOF'
import json, yaml
j = json.load(open("both.json")); y = list(yaml.safe_load_all(open("both.yaml")))
print(j["apiVersion"], j["kind"], len(j["items"]), j["items"] == y)
EOF
)" "v1 List 7 True"

# ---- what the objects say ----
t_eq "the ClusterImagePolicy holds the trusted key's PEM, mode enforce, this repository" "$($PY - "$T/k1.pub" "$REG" <<'EOF'
import sys, yaml
pem = open(sys.argv[1]).read()
d = [o for o in yaml.safe_load_all(open("hello.yaml")) if o["kind"] == "ClusterImagePolicy"][0]
a = d["spec"]["authorities"]
print(len(a), a[0]["key"]["data"] == pem, d["spec"]["mode"], d["spec"]["images"][0]["glob"] == sys.argv[2] + "/hello*")
EOF
)" "1 True enforce True"
t_eq "the Deployment: the image as pinned, annotations, maxUnavailable 0" "$($PY - "$REG/hello@$H" "$MD" "$KID" <<'EOF'
import sys, yaml
d = [o for o in yaml.safe_load_all(open("hello.yaml")) if o["kind"] == "Deployment"][0]
c = d["spec"]["template"]["spec"]["containers"][0]
a = d["metadata"]["annotations"]
print(c["image"] == sys.argv[1], a["substrate.dev/manifest-digest"] == sys.argv[2], a["substrate.dev/key-id"] == sys.argv[3],
      d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"])
EOF
)" "True True True 0"
t_eq "the Job: kata, the jobspec's digest and its signer" "$($PY - "$JD" "$KID" <<'EOF'
import sys, yaml
d = [o for o in yaml.safe_load_all(open("job.yaml")) if o["kind"] == "Job"][0]
a = d["metadata"]["annotations"]
print(d["spec"]["template"]["spec"]["runtimeClassName"], a["substrate.dev/jobspec-digest"] == sys.argv[1],
      a["substrate.dev/jobspec-key-id"] == sys.argv[2], d["spec"]["activeDeadlineSeconds"])
EOF
)" "kata True True 60"
t_eq "stderr lists what does not map (hello: pids, the host address)" \
    "$(grep -c '^render: hello: pids: 64 has no Kubernetes equivalent' hello.err) $(grep -c '^render: hello: ports\[0\]: the host address' hello.err)" "1 1"
t_eq "  ... and for the jobspec: inputs, outputs, probes" \
    "$(grep -cE '^render: probe-demo: (inputs|outputs|probes): .*; not rendered$' job.err)" 3
t_eq "  ... and nothing but such lines" "$(grep -vc '^render: [a-z0-9-]*: .* no Kubernetes equivalent' hello.err job.err | paste -sd' ')" \
    "hello.err:0 job.err:0"

sed 's|^network: private|runtime: runsc\nnetwork: private|; s|^name: hello|name: hello-g|' m/hello.service.yaml >m/g.service.yaml
out=$(render --with-runtime-class --runtime-class kata-qemu --gvisor-class gv m/g.service.yaml m/job.json 2>/dev/null)
t_eq "--with-runtime-class: the RuntimeClass objects first (gv -> runsc, kata-qemu)" "$($PY -c '
import sys, yaml
d = list(yaml.safe_load_all(sys.stdin))
print([(o["metadata"]["name"], o["handler"]) for o in d if o["kind"] == "RuntimeClass"], d[0]["kind"], d[1]["kind"])
' <<<"$out")" "[('gv', 'runsc'), ('kata-qemu', 'kata-qemu')] RuntimeClass RuntimeClass"
t_eq "  ... without it: none" "$(render m/g.service.yaml m/job.json 2>/dev/null | grep -c '^kind: RuntimeClass')" 0
t_eq "--namespace: the namespaced objects carry it, the ClusterImagePolicy's name too" \
    "$(render -n prod m/hello.service.yaml 2>/dev/null | grep -cE '^  namespace: prod$|^  name: substrate-prod-hello$')" 4

# ---- refusals: exit code, message, nothing on stdout ----
refused() { # refused DESC CODE PATTERN ARGS...
    local d=$1 c=$2 p=$3 out err rc; shift 3
    out=$(render "$@" 2>"$T/err"); rc=$?; err=$(cat "$T/err")
    if [ "$rc" = "$c" ] && [ -z "$out" ] && grep -Eq -- "$p" <<<"$err"; then t_ok "$d"
    else t_not_ok "$d"; t_diag "exit $rc (want $c), stdout ${#out} bytes, stderr: $err"; fi
}
cp m/job.json m/unsigned.json
refused "an unsigned jobspec: exit 1, names the missing .sig" 1 "unsigned.json is not signed: no m/unsigned.json.sig" m/unsigned.json
refused "  ... also with -o json (no JSON error on stdout)" 1 "is not signed" -o json m/unsigned.json
cp m/job.json m/other.json; signblob m/other.json k2
refused "a jobspec signed by an untrusted key: exit 1" 1 "refused the jobspec m/other.json.*no trusted key" m/other.json
refused "  ... and one file refused renders nothing of the others" 1 "m/other.json" m/hello.service.yaml m/other.json
sed 's|^network: private|network: host|; /^ports:/d' m/hello.service.yaml >m/host.service.yaml
refused "network: host: exit 2, with the reason" 2 "network: host is refused for Kubernetes.*isolation" m/host.service.yaml
sed 's|"allow": \[\]|"allow": ["example.com:443"]|' m/job.json >m/named.json; signblob m/named.json k1
refused "an egress allowlist entry by name: exit 2, NetworkPolicy has only ipBlocks" 2 \
    "egress.allow\[0\].*NetworkPolicy has no host names, only ipBlocks" m/named.json
sed 's|"allow": \[\]|"allow": ["192.0.2.9:443"]|' m/job.json >m/ip.json; signblob m/ip.json k1
t_eq "  ... by address: one ipBlock /32 and its port" "$(render m/ip.json 2>/dev/null | grep -cE 'cidr: "192.0.2.9/32"|port: 443$')" 2
sed "s|^image: .*|image: $REG/hello@$HU|" m/hello.service.yaml >m/unsigned-image.service.yaml
refused "an unsigned image: exit 1, no signature" 1 "no signature|not signed|unsigned" m/unsigned-image.service.yaml
sed "s|\"image\": \"[^\"]*\"|\"image\": \"$REG/hello@$HU\"|" m/job.json >m/unsigned-image.json; signblob m/unsigned-image.json k1
refused "  ... named by a signed jobspec: exit 1" 1 "refused the job's image" m/unsigned-image.json
refused "the unpinned reference manifest (all-zero digest): exit 2, says to pin it" 2 "all-zero placeholder" \
    "$TOP/platform/manifests/hello.service.yaml"
refused "no FILE: usage error" 2 "name at least one FILE"
refused "a bad --namespace: exit 2" 2 "--namespace" -n Bad m/hello.service.yaml
refused "an unknown -o: exit 2" 2 "yaml or json" -o text m/hello.service.yaml

# ---- help ----
t_eq "render --help and render k8s --help" \
    "$("$BIN" render --help | head -1) | $("$BIN" render k8s --help | grep -c -e '^Usage: substrate render k8s' -e 'progressDeadlineSeconds' -e 'not rendered')" \
    "Usage: substrate render k8s [options] FILE... | 3"

# ---- schema validation: tests/tools/k8s-validate (installed by scripts/install-test-tools) ----
V=$TOP/tests/tools/k8s-validate/validate
sed 's/"name": "probe-demo"/"name": "probe-ip"/' m/ip.json >m/ip2.json; signblob m/ip2.json k1
render -o json --with-runtime-class m/hello.service.yaml m/job.json m/ip2.json m/g.service.yaml >all.json 2>all.err || t_diag "$(cat all.err)"
t_check "every rendered object validates strictly (Kubernetes 1.27 schemas, unknown fields refused, the ClusterImagePolicy against its CRD)" "$V" all.json
t_eq "  all of them: Deployment, Service, NetworkPolicy, Job, ClusterImagePolicy, RuntimeClass" \
    "$(/usr/bin/python3 -c 'import json,sys; print(" ".join(sorted({o["kind"] for o in json.load(open(sys.argv[1]))["items"]})))' all.json)" \
    "ClusterImagePolicy Deployment Job NetworkPolicy RuntimeClass Service"
# the same output with one field the API does not know, in each kind: each is refused
/usr/bin/python3 - all.json >bad.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for o in d["items"]:
    o.setdefault("spec", {})["substrateBogus"] = 1
print(json.dumps(d))
PY
t_fails "  and the validator is strict on this very output (an unknown field in each object is refused)" 1 \
    "of $(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' all.json) objects invalid" "$V" bad.json
t_done

#!/usr/bin/env bash
# tests/tools/k8s-validate can say no: hand-written objects of every kind that
# `substrate render k8s` emits pass; broken copies fail with the reason (unknown
# fields at any depth, wrong types, missing required fields, unknown kinds, a
# ClusterImagePolicy against sigstore's CRD); free-form maps take any key; and a
# missing install is exit 3, never a pass.
. "$(dirname "$0")/../lib.sh"

TOOL=$TOP/tests/tools/k8s-validate
V=$TOOL/validate
FX=$TOP/tests/fixtures/k8s/validate
CRD=$TOP/tests/fixtures/k8s/crd
PY=/usr/bin/python3

# not installed: exit 3 and say what to run (whatever else is installed)
mkdir -p "$T/empty"
t_fails "without the npm packages it exits 3 and names the install command" 3 \
    "not installed in $T/empty: run scripts/install-test-tools" env K8S_VALIDATE_MODULES="$T/empty" "$V" "$FX/service.json"
mkdir -p "$T/nonode"
ln -s "$(command -v dirname)" "$T/nonode/dirname"
t_fails "without node it exits 3 and names the package" 3 "node is not installed: .*nodejs" \
    env PATH="$T/nonode" "$V" "$FX/service.json"

# the real packages: install them if the test setup has not (scripts/test does)
if command -v node >/dev/null 2>&1 && [ ! -d "$TOOL/node_modules/kubernetes-models" ]; then
    "$TOP/scripts/install-test-tools" >"$T/install.log" 2>&1 || t_diag "install-test-tools failed:" "$(cat "$T/install.log")"
fi
if ! command -v node >/dev/null 2>&1 || [ ! -d "$TOOL/node_modules/kubernetes-models" ]; then
    t_skip "strict Kubernetes schema validation" \
        "node or tests/tools/k8s-validate/node_modules is missing and scripts/install-test-tools could not install them (run scripts/install-deps, then scripts/install-test-tools)"
    t_done
    exit 0
fi

# an installed version other than the pinned one is not used
pin() { node -e 'process.stdout.write(require(process.argv[1]).dependencies[process.argv[2]])' "$TOOL/package.json" "$1"; }
mkdir -p "$T/stale/ajv" "$T/stale/kubernetes-models"
printf '{"version":"%s"}' "$(pin ajv)" > "$T/stale/ajv/package.json"
printf '{"version":"4.0.0"}' > "$T/stale/kubernetes-models/package.json"
t_fails "an installed kubernetes-models other than the pinned one: exit 3" 3 \
    "kubernetes-models 4.0.0 is installed but package.json pins $(pin kubernetes-models): run scripts/install-test-tools" \
    env K8S_VALIDATE_MODULES="$T/stale" "$V" "$FX/service.json"

# usage
t_fails "no file: usage, exit 2" 2 "^k8s-validate: no file given" "$V"
t_fails "an unknown option: usage, exit 2" 2 "unknown option --strict" "$V" --strict "$FX/service.json"

# ---- good objects ----
for k in deployment service networkpolicy job runtimeclass clusterimagepolicy; do
    t_fails "a good $k passes" 0 "^1 objects valid$" "$V" "$FX/$k.json"
done
t_fails "a List of three (a Service, a RuntimeClass, a ConfigMap with free-form data keys) passes" 0 \
    "^3 objects valid$" "$V" "$FX/list.json"
t_fails "every good fixture at once: 9 objects" 0 "^9 objects valid$" "$V" "$FX"/*.json
t_fails "stdin (-) is read" 0 "^1 objects valid$" "$V" - < "$FX/job.json"

# broken copies: mutate FIXTURE DST PYTHON, the Python edits the dict o
mutate() {
    $PY - "$FX/$1" "$T/$2" "$3" <<'EOF' || { echo "Bail out! cannot make $2"; exit 1; }
import json, sys
o = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(o, open(sys.argv[2], "w"))
EOF
}
# bad NAME MESSAGE-REGEX DESC: the file fails, with exactly one invalid object
bad() {
    t_fails "$3" 1 "^$T/$1: $2" "$V" "$T/$1"
}
# every DESC CODE PATTERNS-FILE VALIDATE-ARGS...: the exit code is CODE and each
# line of PATTERNS-FILE (a grep -E regex) matches a line of the output
every() {
    local desc=$1 code=$2 pats=$3; shift 3
    local out rc pat miss=""
    out=$("$V" "$@" 2>&1); rc=$?
    while IFS= read -r pat; do grep -Eq -- "$pat" <<<"$out" || miss="$miss /$pat/"; done < "$pats"
    if [ "$rc" = "$code" ] && [ -z "$miss" ]; then t_ok "$desc"
    else t_not_ok "$desc"; t_diag "expected exit $code, got $rc; unmatched:$miss" "$out"; fi
}
C='o["spec"]["template"]["spec"]["containers"][0]'

# ---- free-form maps take any key ----
mutate deployment.json labels.json 'o["metadata"]["labels"].update({"Any.Key/with_odd-chars": "v", "x": ""}); o["metadata"]["annotations"]["free/form"] = "yes"; o["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/arch": "amd64", "whatever": "x"}; '"$C"'["resources"]["limits"]["example.com/gpu"] = "1"'
t_fails "labels, annotations, nodeSelector and resources.limits take arbitrary keys" 0 "^1 objects valid$" "$V" "$T/labels.json"
mutate deployment.json labelint.json 'o["metadata"]["labels"]["count"] = 3'
bad labelint.json "Deployment/hello: metadata\.labels\.count: must be string$" "a label value must still be a string"

# ---- built-in kinds ----
mutate deployment.json top.json 'o["replica"] = 2'
bad top.json "Deployment/hello: replica: unknown field$" "an unknown top-level field fails"
mutate deployment.json meta.json 'o["metadata"]["label"] = {"a": "b"}'
bad meta.json "Deployment/hello: metadata\.label: unknown field$" "an unknown field in metadata fails"
mutate deployment.json deep.json "$C"'["securityContext"]["readOnlyRootFileSystem"] = True'
bad deep.json "Deployment/hello: spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFileSystem: unknown field$" \
    "an unknown field deep in a container's securityContext fails (a misspelling)"
mutate deployment.json deeper.json "$C"'["securityContext"]["capabilities"]["remove"] = ["ALL"]; o["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["size"] = "1Gi"'
cat > "$T/deeper.pat" <<'EOF'
^.*/deeper\.json: Deployment/hello: spec\.template\.spec\.containers\[0\]\.securityContext\.capabilities\.remove: unknown field$
^.*/deeper\.json: Deployment/hello: spec\.template\.spec\.volumes\[0\]\.emptyDir\.size: unknown field$
^1 of 1 objects invalid$
EOF
every "unknown fields in capabilities and in an emptyDir are both named" 1 "$T/deeper.pat" "$T/deeper.json"
mutate deployment.json type.json 'o["spec"]["replicas"] = "two"'
bad type.json "Deployment/hello: spec\.replicas: must be integer$" "replicas: \"two\" fails (wrong type)"
mutate deployment.json nocont.json 'del o["spec"]["template"]["spec"]["containers"]'
bad nocont.json "Deployment/hello: spec\.template\.spec: must have required property 'containers'$" \
    "a pod template without containers fails (missing required field)"
mutate deployment.json enum.json 'o["spec"]["strategy"]["type"] = "Rolling"'
bad enum.json "Deployment/hello: spec\.strategy\.type: must be equal to one of the allowed values: \"Recreate\", \"RollingUpdate\"$" \
    "a strategy type outside the enum fails"
mutate deployment.json qty.json "$C"'["resources"]["limits"]["memory"] = "lots"'
bad qty.json "Deployment/hello: spec\.template\.spec\.containers\[0\]\.resources\.limits\.memory: must match exactly one schema in oneOf \(must be number; must match format \"quantity\"\)$" \
    "a memory limit that is no quantity fails"
mutate service.json port.json 'o["spec"]["ports"][0]["targetPort"] = True'
bad port.json "Service/hello: spec\.ports\[0\]\.targetPort: must match exactly one schema in oneOf" "a targetPort neither string nor integer fails"
mutate networkpolicy.json np.json 'o["spec"]["egress"][0]["to"][0]["ipBlock"]["cidrs"] = ["192.0.2.0/24"]'
bad np.json "NetworkPolicy/hello: spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidrs: unknown field$" "an unknown field in a NetworkPolicy ipBlock fails"
mutate job.json job.json 'o["spec"]["template"]["spec"]["runtimeClass"] = "kata"'
bad job.json "Job/report: spec\.template\.spec\.runtimeClass: unknown field$" "runtimeClass (for runtimeClassName) in a Job fails"
mutate runtimeclass.json rc.json 'o["spec"] = {"handler": "kata"}'
bad rc.json "RuntimeClass/kata: spec: unknown field$" "a RuntimeClass with a spec (it has none) fails"

# ---- kinds and names ----
mutate deployment.json kind.json 'o["kind"] = "Deployments"'
bad kind.json "Deployments/hello: no schema for kind Deployments apiVersion apps/v1" "an unknown kind fails"
mutate deployment.json apiv.json 'o["apiVersion"] = "apps/v1beta9"'
bad apiv.json "Deployment/hello: no schema for kind Deployment apiVersion apps/v1beta9" "a known kind under an unknown apiVersion fails"
printf '{"apiVersion":"v1","kind":"Container","metadata":{"name":"c"},"name":"c","image":"x"}' > "$T/container.json"
bad container.json "Container/c: no schema for kind Container apiVersion v1" "a schema that is no API kind (Container) is not a kind"
mutate deployment.json noname.json 'del o["metadata"]["name"]'
bad noname.json "Deployment/\?: metadata: must have required property 'name'$" "an object without metadata.name fails"
mutate deployment.json badname.json 'o["metadata"]["name"] = "Hello_World"'
bad badname.json "Deployment/Hello_World: metadata\.name: \"Hello_World\" is not a DNS-1123 subdomain" "a name that is no DNS-1123 name fails"
mutate service.json svcname.json 'o["metadata"]["name"] = "1st.svc"'
bad svcname.json "Service/1st\.svc: metadata\.name: \"1st\.svc\" is not a DNS-1035 label" "a Service name must be a DNS-1035 label"

# ---- ClusterImagePolicy against the CRD ----
CIP='o["spec"]["authorities"][0]'
mutate clusterimagepolicy.json cip-unknown.json 'o["spec"]["keys"] = []'
bad cip-unknown.json "ClusterImagePolicy/substrate-hello: spec\.keys: unknown field$" "a ClusterImagePolicy with an unknown spec field fails"
mutate clusterimagepolicy.json cip-deep.json "$CIP"'["key"]["pem"] = "x"'
bad cip-deep.json "ClusterImagePolicy/substrate-hello: spec\.authorities\[0\]\.key\.pem: unknown field$" \
    "an unknown field inside an authority's key fails"
mutate clusterimagepolicy.json cip-meta.json 'o["metadata"]["labelz"] = {}'
bad cip-meta.json "ClusterImagePolicy/substrate-hello: metadata\.labelz: unknown field$" "a ClusterImagePolicy's metadata is ObjectMeta, strictly"
mutate clusterimagepolicy.json cip-type.json 'o["spec"]["images"] = "127.0.0.1:5000/hello"'
bad cip-type.json "ClusterImagePolicy/substrate-hello: spec\.images: must be array$" "images given as a string fails"
mutate clusterimagepolicy.json cip-mode.json 'o["spec"]["mode"] = "bogus"'
bad cip-mode.json "ClusterImagePolicy/substrate-hello: spec\.mode: \"bogus\" is neither \"enforce\" nor \"warn\"" \
    "mode \"bogus\" fails (the rule the CRD's field description states; its schema says only string)"
mutate clusterimagepolicy.json cip-warn.json 'o["spec"]["mode"] = "warn"; o["spec"]["match"] = [{"resource": "pods", "selector": {"matchLabels": {"any/key": "v"}}}]'
t_fails "mode warn and free-form matchLabels (x-kubernetes-preserve-unknown-fields) pass" 0 "^1 objects valid$" "$V" "$T/cip-warn.json"
mutate clusterimagepolicy.json cip-alpha.json 'o["apiVersion"] = "policy.sigstore.dev/v1alpha1"'
t_fails "the other served version (v1alpha1) validates against its own schema" 0 "^1 objects valid$" "$V" "$T/cip-alpha.json"
mutate clusterimagepolicy.json cip-v9.json 'o["apiVersion"] = "policy.sigstore.dev/v9"'
bad cip-v9.json "ClusterImagePolicy/substrate-hello: no schema for kind ClusterImagePolicy apiVersion policy\.sigstore\.dev/v9" \
    "a version the CRD does not serve fails"
if $PY -c 'import yaml' 2>/dev/null; then
    t_check "the committed CRD JSON equals its YAML (tests/tools/k8s-validate/crd-json)" \
        bash -c '"$1/crd-json" "$2/policy.sigstore.dev_clusterimagepolicies.crd.yaml" | cmp - "$2/policy.sigstore.dev_clusterimagepolicies.crd.json"' _ "$TOOL" "$CRD"
else
    t_skip "the committed CRD JSON equals its YAML" "python3-yaml is not installed (apt-get install python3-yaml)"
fi

# ---- Lists and files ----
mutate list.json list-bad.json 'o["items"][1]["handlr"] = "runsc"'
cat > "$T/list-bad.pat" <<'EOF'
^.*/list-bad\.json: items\[1\] RuntimeClass/gvisor: handlr: unknown field$
^1 of 3 objects invalid$
EOF
every "a bad item in a List is named by its index; the summary counts objects" 1 "$T/list-bad.pat" "$T/list-bad.json"
t_fails "one bad file among good ones fails the run, the good ones counted" 1 "^1 of 5 objects invalid$" \
    "$V" "$FX/service.json" "$T/type.json" "$FX/list.json"
mutate list.json list-empty.json 'o["items"] = []'
bad list-empty.json "List: items: the List is empty" "an empty List fails (nothing validated)"
mutate list.json list-extra.json 'o["kind2"] = "x"'
bad list-extra.json "List: kind2: unknown field" "an unknown field on the List fails"
printf '{"apiVersion": "v1", "kind": ' > "$T/trunc.json"
bad trunc.json "not valid JSON" "truncated JSON fails"
bad nothere.json "cannot read" "a missing file fails"

t_done

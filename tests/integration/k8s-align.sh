#!/usr/bin/env bash
# align --k8s end to end: a real registry, a real hello image signed with a
# real key, and pod lists shaped like the Kubernetes API's (the unit-test
# fixtures, with the real registry and digests written in). ALIGNED from a
# file, from stdin and from kubectl (a stand-in on PATH that checks the argv it
# gets); DRIFT for another digest, an image by tag, no pods, an unsigned
# image; exit 3 (never ALIGNED) with the registry down and no recent
# verification; kubectl missing; bad input; nothing local touched.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
FIX=$TOP/tests/fixtures/k8s/pods
FIXDIGEST=sha256:5d7e0a4c2b9f18e6a3c4d1f07b2e9a8c6d5f4e3b2a1908f7e6d5c4b3a2918f7e
FIXOLD=sha256:1111111111111111111111111111111111111111111111111111111111111111

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
build() { "$BIN" build --repo "$R" hello --version "$1" --rev "$SHA" -q | awk '{print $NF}'; }
V1=$(build 1.0.0); V1=${V1#*@}
V2=$(build 2.0.0); V2=${V2#*@}
if [[ $V1 != sha256:* || $V2 != sha256:* ]]; then echo "Bail out! could not build hello ($V1, $V2)"; exit 1; fi
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k1" >/dev/null
"$BIN" key trust "$T/k1.pub" >/dev/null
KID=$("$BIN" key id "$T/k1.pub")
SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$REG/hello@$V1" --key "$T/k1.key" >/dev/null || { echo "Bail out! sign"; exit 1; }
# V2 stays unsigned

manifest() { # manifest FILE DIGEST [extra yaml lines...]
    local f=$1 d=$2; shift 2
    { echo "name: hello"; echo "image: $REG/hello@$d"; for l in "$@"; do echo "$l"; done; } >"$f"
}
M=$T/hello.yaml
manifest "$M" "$V1"
# pods FIXTURE RUNNING [OTHER]: a fixture with this registry, RUNNING for its digest and OTHER for its old one
pods() { sed -e "s|127.0.0.1:5000|$REG|g" -e "s|$FIXDIGEST|$2|g" -e "s|$FIXOLD|${3:-$V2}|g" "$FIX/$1.json"; }
pods aligned "$V1" >"$T/aligned.json"
pods other-digest "$V1" "$V2" >"$T/other.json"
pods by-tag "$V1" >"$T/by-tag.json"
pods empty "$V1" >"$T/empty.json"
pods aligned "$V2" >"$T/unsigned.json"
grep -q "$V1" "$T/aligned.json" && ! grep -q "$FIXDIGEST" "$T/aligned.json" || { echo "Bail out! pod list template"; exit 1; }
# the pod list kubectl would print when something that could be read as JSON is refused: one Pod
pods single-pod "$V1" >"$T/single.json"

# ---- ALIGNED ----
out=$("$BIN" align --k8s "$M" --pods "$T/aligned.json" 2>&1); rc=$?
t_eq "every pod on the signed digest and ready, --pods FILE: ALIGNED, exit 0" "$rc $(head -1 <<<"$out")" "0 ALIGNED hello"
t_eq "each check passes and each pod is listed" \
    "$(grep -cE '^  (running|digest|ready|signature) +pass' <<<"$out") $(grep -c "^  pod default/hello-7d9c5b8f4-.*: Running, ready, $V1" <<<"$out")" "4 2"
t_eq "the signature check names the key" "$(grep -c "signature.*verifies now: signed by key $KID" <<<"$out")" 1
out=$("$BIN" align --k8s "$M" --pods - <"$T/aligned.json" 2>&1); rc=$?
t_eq "the same list on stdin (--pods -): ALIGNED, exit 0" "$rc $(head -1 <<<"$out")" "0 ALIGNED hello"
"$BIN" align --k8s "$M" --pods "$T/aligned.json" --json >"$T/a.json"; rc=$?
t_eq "--json: verdict, target, digests, key, checks, pods, exit_code" \
    "$rc $($PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
print(d["verdict"], d["target"], d["service"], d["manifest_digest"]==d["running_digest"]==sys.argv[2],
      d["running_digests"]==[sys.argv[2]], d["key_id"]==sys.argv[3],
      [c["check"]+"="+c["result"] for c in d["checks"]],
      [(p["name"], p["phase"], p["ready"], p["digest"]==sys.argv[2], p["reasons"]) for p in d["pods"]],
      d["exit_code"], d["halted"], type(d["seconds"]).__name__, d["reasons"])' "$T/a.json" "$V1" "$KID" 2>&1)" \
    "0 ALIGNED k8s hello True True True ['running=pass', 'digest=pass', 'ready=pass', 'signature=pass'] [('hello-7d9c5b8f4-x2v9k', 'Running', True, True, []), ('hello-7d9c5b8f4-qk4mz', 'Running', True, True, [])] 0 False float []"

# ---- DRIFT ----
out=$("$BIN" align --k8s "$M" --pods "$T/other.json" 2>&1); rc=$?
t_eq "one pod on another digest: DRIFT, exit 1" "$rc $(head -1 <<<"$out")" "1 DRIFT hello"
t_eq "it names that pod and both digests, and only that pod" \
    "$(grep -c -- "- runs $V2 (manifest $V1)" <<<"$out") $(grep -B1 -- "- runs $V2" <<<"$out" | grep -c 'pod default/hello-5f6b7c8d9-abcde:') $(grep -c -- '^    - ' <<<"$out")" "1 1 1"
"$BIN" align --k8s "$M" --pods "$T/other.json" --json >"$T/o.json"
t_eq "--json of the DRIFT: reasons, both running digests, exit_code 1" \
    "$($PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
print(d["verdict"], d["reasons"]==["pod hello-5f6b7c8d9-abcde: runs %s (manifest %s)" % (sys.argv[3], sys.argv[2])],
      sorted(d["running_digests"])==sorted([sys.argv[2], sys.argv[3]]), d["running_digest"], d["exit_code"])' "$T/o.json" "$V1" "$V2" 2>&1)" \
    "DRIFT True True  1"
out=$("$BIN" align --k8s "$M" --pods "$T/by-tag.json" 2>&1); rc=$?
t_eq "a pod whose spec names the image by tag (its imageID on the digest): DRIFT, exit 1" \
    "$rc $(head -1 <<<"$out") $(grep -c "image by tag $REG/hello:1.0" <<<"$out")" "1 DRIFT hello 2"
out=$("$BIN" align --k8s "$M" --pods "$T/empty.json" 2>&1); rc=$?
t_eq "no pods: DRIFT (not running), exit 1" "$rc $(head -1 <<<"$out") $(grep -c 'running .*FAIL .*no pods: not running' <<<"$out")" "1 DRIFT hello 1"
manifest "$T/unsigned.yaml" "$V2"
out=$("$BIN" align --k8s "$T/unsigned.yaml" --pods "$T/unsigned.json" 2>&1); rc=$?
t_eq "every pod on an unsigned digest: DRIFT, the signature check fails, exit 1" \
    "$rc $(head -1 <<<"$out") $(grep -c 'signature .*FAIL .*does not verify now' <<<"$out")" "1 DRIFT hello 1"
t_eq "the pods themselves match that manifest (only the signature fails)" "$(grep -cE '^  (running|digest|ready) +pass' <<<"$out")" 3

out=$(SUBSTRATE_STATE=$T/notrust "$BIN" align --k8s "$M" --pods "$T/aligned.json" 2>&1); rc=$?
t_eq "no trust store: cannot decide (exit 3), saying so (not 'registry unreachable')" \
    "$rc $(grep -c 'signature .*undecided .*cannot decide: the trust store .* does not exist' <<<"$out") $(grep -c 'registry unreachable' <<<"$out")" "3 1 0"

# ---- kubectl: missing, a stand-in on PATH ----
t_fails "no --pods and no kubectl on PATH: exit 3, says to install kubectl or pass --pods" 3 \
    'kubectl is not on PATH: install kubectl.*--pods FILE.*--pods -' env PATH=/nonexistent "$BIN" align --k8s "$M"
mkdir -p "$T/fakebin"
cat >"$T/fakebin/kubectl" <<EOF
#!/bin/sh
# a stand-in for kubectl: records its argv, answers only the expected question
printf '%s\n' "\$*" >>"$T/kubectl-argv"
case "\$*" in
"get pods -l app.kubernetes.io/name=hello -o json"|"get pods -l app.kubernetes.io/name=hello -o json --namespace default")
    cat "$T/aligned.json" ;;
"get pods -l app.kubernetes.io/name=hello -o json --namespace broken")
    echo 'error: You must be logged in to the server (Unauthorized)' >&2; exit 1 ;;
*) echo "kubectl stand-in: unexpected arguments: \$*" >&2; exit 64 ;;
esac
EOF
chmod +x "$T/fakebin/kubectl"
out=$(PATH="$T/fakebin:$PATH" "$BIN" align --k8s "$M" 2>&1); rc=$?
t_eq "no --pods: kubectl is run, its list read: ALIGNED, exit 0" "$rc $(head -1 <<<"$out")" "0 ALIGNED hello"
t_eq "kubectl got: get pods -l app.kubernetes.io/name=hello -o json" "$(cat "$T/kubectl-argv")" \
    "get pods -l app.kubernetes.io/name=hello -o json"
t_eq "the output says where the pods came from" "$(grep -c '^  pods from: kubectl get pods -l app.kubernetes.io/name=hello -o json$' <<<"$out")" 1
out=$(PATH="$T/fakebin:$PATH" "$BIN" align --k8s "$M" --namespace default 2>&1); rc=$?
t_eq "--namespace is passed to kubectl" "$rc $(tail -1 "$T/kubectl-argv")" \
    "0 get pods -l app.kubernetes.io/name=hello -o json --namespace default"
out=$(PATH="$T/fakebin:$PATH" "$BIN" align --k8s "$M" --namespace broken 2>&1); rc=$?
t_eq "kubectl failing: exit 3, naming the command and what kubectl said" \
    "$rc $(grep -c 'kubectl get pods .* --namespace broken failed (exit 1)' <<<"$out") $(grep -c 'detail: error: You must be logged in' <<<"$out")" "3 1 1"

# ---- bad input, usage ----
printf '{"kind": "List", "items": [' >"$T/truncated.json"
t_fails "a truncated pod list: exit 2, not valid JSON, what to give instead" 2 \
    "the pod list $T/truncated.json: not valid JSON.*kubectl get pods -l app.kubernetes.io/name=NAME -o json" \
    "$BIN" align --k8s "$M" --pods "$T/truncated.json"
t_fails "a single Pod instead of a list: exit 2" 2 'a single Pod, not a list of pods' \
    "$BIN" align --k8s "$M" --pods - <"$T/single.json"
t_fails "a pod list file that is not there: exit 2" 2 "cannot open the pod list $T/nope.json" \
    "$BIN" align --k8s "$M" --pods "$T/nope.json"
t_fails "--deep with --k8s: usage error (exit 2) saying why" 2 '--deep does not apply with --k8s.*root filesystem' \
    "$BIN" align --k8s --deep "$M" --pods "$T/aligned.json"
t_fails "--pods without --k8s: usage error (exit 2)" 2 '--pods is for --k8s' "$BIN" align "$M" --pods "$T/aligned.json"
out=$("$BIN" align --help); rc=$?
t_eq "align --help documents --k8s, --pods and --namespace" \
    "$rc $(grep -cE '^      --k8s |^      --pods FILE\|- |^  -n, --namespace N ' <<<"$out")" "0 3"

# ---- nothing local was touched ----
t_eq "align --k8s halts nothing and writes no local align record" \
    "$(ls "$SUBSTRATE_STATE/tier1/services" 2>/dev/null | wc -l)" 0
t_eq "its verification cache holds the manifest's digest and key" \
    "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["digest"]==sys.argv[2], d["key_id"]==sys.argv[3])' \
        "$SUBSTRATE_STATE/k8s/verified/hello.json" "$V1" "$KID" 2>&1)" "True True"

# ---- the registry unreachable ----
"$BIN" registry stop >/dev/null
out=$("$BIN" align --k8s "$M" --pods "$T/aligned.json" 2>&1); rc=$?
t_eq "registry down, a recent verification by align --k8s on record: ALIGNED, its age printed" \
    "$rc $(grep -c 'registry unreachable.*last verified [0-9]* s ago' <<<"$out")" "0 1"
manifest "$T/stale.yaml" "$V1" "verify_max_age: 1s"
sleep 1.5
out=$("$BIN" align --k8s "$T/stale.yaml" --pods "$T/aligned.json" 2>&1); rc=$?
t_eq "registry down, the verification older than verify_max_age: exit 3, UNDECIDED, never ALIGNED" \
    "$rc $(head -1 <<<"$out") $(grep -c '^ALIGNED' <<<"$out")" "3 UNDECIDED hello 0"
mkdir -p "$T/fresh"
cp -r "$SUBSTRATE_STATE/trust" "$T/fresh/trust"
out=$(SUBSTRATE_STATE=$T/fresh "$BIN" align --k8s "$M" --pods "$T/aligned.json" --json 2>&1); rc=$?
t_eq "registry down, no verification on record: exit 3 (--json verdict UNDECIDED, signature undecided)" \
    "$rc $($PY -c 'import json,sys; d=json.load(sys.stdin); print(d["verdict"], [c["result"] for c in d["checks"] if c["check"]=="signature"], "no verification on record" in d["checks"][3]["detail"])' <<<"$out" 2>&1)" \
    "3 UNDECIDED ['undecided'] True"
out=$("$BIN" align --k8s "$M" --pods "$T/other.json" 2>&1); rc=$?
t_eq "registry down and a pod on another digest: DRIFT (exit 1), not undecided" "$rc $(head -1 <<<"$out")" "1 DRIFT hello"

t_done

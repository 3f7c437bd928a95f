#!/usr/bin/env bash
# platform/images/build-sign-push on a fresh clone against a real
# docker-registry: one line per image, the same digests twice, the platform
# key made once (0600 key and passphrase, public key trusted), `verify` with
# the trust store accepts every image and another key refuses them; a dirty
# tree, an untrusted key, a wrong passphrase and a non-reproducible image are
# refused before anything is pushed.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
unset SUBSTRATE_PASSPHRASE

git clone -q "$TOP" "$T/repo"
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
t_registry
REG=$SUBSTRATE_REGISTRY
S=$SUBSTRATE_STATE
bsp() { (cd "$R" && SUBSTRATE_BIN=$BIN platform/images/build-sign-push "$@"); }
tags() { # tags REPO: one tag a line (none for an unknown repository); exits 1 when
          # the registry could not list them, so a dead registry never reads as "no tags"
    $PY - "$REG" "$1" <<'PYEOF'
import json, sys, urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print("\n".join(json.load(op.open(f"http://{sys.argv[1]}/v2/{sys.argv[2]}/tags/list", timeout=30))["tags"] or []))
except urllib.error.HTTPError as e:
    body = e.read().decode(errors="replace")
    if e.code != 404 or "NAME_UNKNOWN" not in body:
        sys.exit(f"listing the tags of {sys.argv[2]} failed: HTTP {e.code} {body}")
except Exception as e:
    sys.exit(f"listing the tags of {sys.argv[2]} failed: {e}")
PYEOF
}
mapfile -t images < <(cd "$R/platform/images" && for d in */; do [ -f "$d/image.json" ] && echo "${d%/}"; done | sort)

# ---- the first release --------------------------------------------------------
bsp 1.0.0 >"$T/out1" 2>"$T/err1"; rc=$?
t_eq "build-sign-push 1.0.0 exits 0" "$rc" 0
[ "$rc" = 0 ] || t_diag "$(tail -20 "$T/err1")"
t_eq "one line per image under platform/images (${images[*]})" "$(wc -l <"$T/out1")" "${#images[@]}"
bad=0
for i in "${!images[@]}"; do
    line=$(sed -n "$((i + 1))p" "$T/out1")
    [[ $line =~ ^$REG/${images[$i]}:1\.0\.0\ $REG/${images[$i]}@sha256:[0-9a-f]{64}$ ]] || { bad=1; t_diag "line: $line"; }
done
t_eq "each line is 'REGISTRY/NAME:VERSION REGISTRY/NAME@sha256:<hex>'" "$bad" 0
grep -q "build 2 of 2" "$T/err1" && grep -q "two builds agree" "$T/err1" &&
    t_ok "progress on stderr shows two builds that agree" || { t_not_ok "progress on stderr shows two builds that agree"; t_diag "$(cat "$T/err1")"; }

t_eq "the platform key is mode 0600" "$(stat -c %a "$S/keys/cosign.key" 2>&1)" 600
t_eq "cosign.pass beside it is mode 0600" "$(stat -c %a "$S/keys/cosign.pass" 2>&1)" 600
t_eq "the keys directory is mode 0700" "$(stat -c %a "$S/keys" 2>&1)" 700
PID=$("$BIN" key id "$S/keys/cosign.pub")
t_eq "its public key is in the trust store as <keyid-hex>.pub" \
    "$("$BIN" key id "$S/trust/${PID#sha256:}.pub" 2>&1)" "$PID"
t_fails "the platform key is cosign's encrypted format" 0 "BEGIN ENCRYPTED SIGSTORE PRIVATE KEY" cat "$S/keys/cosign.key"

# every pushed image: served by digest, verified with the trust store, refused with another key
SUBSTRATE_PASSPHRASE=x "$BIN" key generate "$T/other" >/dev/null
ok_trust=0 ok_other=0 ok_tag=0
while read -r tagref digref; do
    name=${tagref%:*}; name=${name#"$REG/"}
    d=${digref#*@}
    served=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$tagref" 2>&1)
    [ "$served" = "$d" ] && ok_tag=$((ok_tag + 1)) || t_diag "$tagref serves $served, not $d"
    out=$("$BIN" verify "$digref" 2>&1) && grep -q "^Verified OK: $digref signed by key $PID" <<<"$out" &&
        ok_trust=$((ok_trust + 1)) || t_diag "verify $digref: $out"
    out=$("$BIN" verify "$digref" --key "$T/other.pub" 2>&1); rc=$?
    [ "$rc" = 1 ] && grep -q "no trusted key matched" <<<"$out" && ok_other=$((ok_other + 1)) || t_diag "other key on $digref ($rc): $out"
done <"$T/out1"
t_eq "the registry serves each VERSION tag at the printed digest" "$ok_tag" "${#images[@]}"
t_eq "verify with the trust store accepts every image, naming the platform key" "$ok_trust" "${#images[@]}"
t_eq "verify with another key refuses every image (no trusted key matched)" "$ok_other" "${#images[@]}"

# ---- again: same digests, same key, no second signature ------------------------
keysum=$(sha256sum "$S/keys/cosign.key" "$S/keys/cosign.pass")
bsp 1.0.0 -q >"$T/out2" 2>"$T/err2"
t_eq "a second run prints the same lines (same digests)" "$(cat "$T/out2")" "$(cat "$T/out1")"
t_eq "  ... with the same platform key, not a new one" "$(sha256sum "$S/keys/cosign.key" "$S/keys/cosign.pass")" "$keysum"
d=$(head -n1 "$T/out1" | awk '{print $2}'); d=${d#*@}
t_fails "  ... and adds no second signature by the same key" 0 "^Verified OK" \
    "$PY" -c 'import json,sys; m=json.load(sys.stdin); assert len(m["layers"]) == 1, m; print("Verified OK")' \
    < <(skopeo inspect --raw --tls-verify=false "docker://$REG/${images[0]}:sha256-${d#sha256:}.sig")
t_eq "the build exports are cleaned up" "$(ls -A "$S/tmp" 2>/dev/null | wc -l)" 0

# ---- --json and --single-build -------------------------------------------------
bsp 1.0.1 --single-build --json >"$T/j.json" 2>"$T/j.err"; rc=$?
t_eq "build-sign-push 1.0.1 --single-build --json exits 0" "$rc" 0
t_check "--single-build --json: one record per image, signed and verified by the platform key" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[3])
assert len(r) == n, r
for x in r:
    assert x["version"] == "1.0.1" and x["reproducible"] is None and x["second_build"] is None, x
    assert x["key_id"] == x["verified_by"] == sys.argv[2], x
    assert x["digest_ref"].endswith("@" + x["digest"]) and x["tag_ref"].endswith(":1.0.1"), x
    assert x["signature_tag"] == "sha256-" + x["digest"].split(":")[1] + ".sig", x
' "$T/j.json" "$PID" "${#images[@]}"
# counted in the progress lines (not -q): each image built once, never a second time
once=$(grep -c ": build 1 of 1$" "$T/j.err") second=$(grep -c ": build 2 of" "$T/j.err")
t_eq "--single-build builds each image once" "$rc $once $second" "0 ${#images[@]} 0"
[ "$rc $once $second" = "0 ${#images[@]} 0" ] || t_diag "$(tail -20 "$T/j.err")"

# ---- refusals, before anything is pushed ----------------------------------------
echo "# changed" >>"$R/README.md"
t_fails "a tracked, modified file makes the tree dirty: refused" 2 "uncommitted changes" bsp 2.0.0
t_fails "  ... and --json names the reason" 2 '"reason": "dirty_tree"' bsp 2.0.0 --json
git -C "$R" checkout -q -- README.md
t_fails "a semver '+' version is refused" 2 "semver|'\+'" bsp 2.0.0+meta
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/untrusted" >/dev/null
t_fails "an untrusted signing key is refused, naming its id and the fix" 2 \
    "not in the trust store.*key trust" env SUBSTRATE_PASSPHRASE=pw "$BIN" build-sign-push --repo "$R" 2.0.0 --key "$T/untrusted.key"
out=$(env SUBSTRATE_PASSPHRASE=pw "$BIN" build-sign-push --repo "$R" 2.0.0 --key "$T/untrusted.key" --json 2>/dev/null)
t_check "  ... and --json on stdout gives the reason key_not_trusted and exit code 2" $PY -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["reason"] == "key_not_trusted" and r["exit_code"] == 2 and "not in the trust store" in r["error"], r
' "$out"
t_fails "a wrong passphrase is refused" 2 "wrong passphrase" \
    env SUBSTRATE_PASSPHRASE=not-it "$BIN" build-sign-push --repo "$R" 2.0.0 --key "$T/untrusted.key"
t_fails "a dead registry is an environment error, found before building" 3 "not reachable|registry start" \
    env SUBSTRATE_REGISTRY=127.0.0.1:$(t_free_port) "$BIN" build-sign-push --repo "$R" 2.0.0 -q

# an image whose build is not reproducible stops the release before any push
mkdir -p "$R/platform/images/noisy"
cat >"$R/platform/images/noisy/image.json" <<'EOF'
{"name": "noisy", "build": ["sh", "-c", "head -c 16 /dev/urandom > \"$OUT/r\""],
 "files": [{"from": "out:r", "to": "/r", "mode": "0644"}], "config": {}}
EOF
git -C "$R" add -A && git -C "$R" -c user.name=t -c user.email=t@t commit -qm "noisy image"
t_fails "a non-reproducible image is refused, naming both digests" 1 \
    "noisy is not reproducible: two builds of commit [0-9a-f]{12} gave sha256:[0-9a-f]{64} and sha256:[0-9a-f]{64}" bsp 2.0.0 -q
t_fails "  ... and --json gives the reason not_reproducible" 1 '"reason": "not_reproducible"' bsp 2.0.0 -q --json
n=0 failed=
for img in "${images[@]}" noisy; do
    if list=$(tags "$img" 2>&1); then grep -qx 2.0.0 <<<"$list" && n=$((n + 1))
    else failed+="$list; "; fi
done
t_eq "  ... and nothing of 2.0.0 was pushed (every repository listed)" "$n ${failed:-listed}" "0 listed"
t_done

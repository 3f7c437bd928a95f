#!/usr/bin/env bash
# Key rotation, as README.md "Rotating a signing key" writes it, on images
# released by build-sign-push (signed and attested by the platform key):
# new key, sign, re-attest, trust new, untrust old; afterwards `verify` and
# `verify --provenance` pass on the rotated image, and content only the old
# key vouches for is refused. Also `substrate attest` itself: idempotent,
# --json, --predicate/--type, and its refusals.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
unset SUBSTRATE_PASSPHRASE

git clone -q "$TOP" "$T/repo"
R=$T/repo
t_registry
REG=$SUBSTRATE_REGISTRY
S=$SUBSTRATE_STATE
out=$("$BIN" build-sign-push 1.0.0 --repo "$R" --single-build -q 2>"$T/err")
rc=$?
hello=$(grep "/hello:" <<<"$out" | awk '{print $NF}')
job=$(grep "/job:" <<<"$out" | awk '{print $NF}')
if [ "$rc" != 0 ] || [[ $hello != "$REG/hello@sha256:"* || $job != "$REG/job@sha256:"* ]]; then
    echo "Bail out! build-sign-push failed (exit $rc): $(tail -5 "$T/err")"
    exit 1
fi
OLD=$("$BIN" key id "$S/keys/cosign.pub")
att_layers() { # REF@digest -> number of layers in its .att manifest
    local repo=${1%@*} d=${1#*@}
    curl -sf -H "Accept: application/vnd.oci.image.manifest.v1+json" \
        "http://$REG/v2/${repo#"$REG"/}/manifests/sha256-${d#sha256:}.att" |
        $PY -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))'
}
t_fails "before: the release verifies with its provenance (platform key $OLD)" 0 \
    "provenance: SLSA v1, verified by key $OLD" "$BIN" verify "$hello" --provenance

# ---- the rotation, step by step as the README gives it ------------------------
cd "$T" || exit 1
# 1. Make the new key and trust it.
t_check "1. key generate new" env SUBSTRATE_PASSPHRASE=new-pw "$BIN" key generate new
NEW=$("$BIN" key id new.pub)
t_check "1. key trust new.pub" "$BIN" key trust new.pub
# 2. Re-sign every image in use and re-attest its provenance (hello; job is
#    left alone: content only the old key vouches for).
t_fails "2. sign with the new key" 0 "^Signed $hello with key $NEW" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" sign "$hello" --key new.key
t_fails "2. attest with the new key re-signs the provenance the old key vouches for" 0 \
    "re-signed: +the provenance verified with trusted key $OLD" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$hello" --key new.key
t_eq "   ... one attestation added (two now)" "$(att_layers "$hello")" 2
t_fails "   attesting again with the same key adds nothing" 0 "^Already attested: $hello with key $NEW" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$hello" --key new.key
t_eq "   ... still two" "$(att_layers "$hello")" 2
# 3. Check each image verifies with the new key alone.
t_fails "3. verify --key new.pub --provenance passes" 0 "provenance: SLSA v1, verified by key $NEW" \
    "$BIN" verify "$hello" --key new.pub --provenance
# 4. Stop trusting the old key.
t_fails "4. key untrust <old-keyid>" 0 "No longer trusted: key $OLD" "$BIN" key untrust "$OLD"

# ---- afterwards -------------------------------------------------------------------
t_fails "verify (trust store: new key only) passes" 0 "^Verified OK: $hello signed by key $NEW" \
    "$BIN" verify "$hello"
t_fails "verify --provenance passes, by the new key" 0 "provenance: SLSA v1, verified by key $NEW" \
    "$BIN" verify "$hello" --provenance
t_fails "the statement is the one the release made (same commit)" 0 \
    "source: .* @ $(git -C "$R" rev-parse HEAD)" "$BIN" verify "$hello" --provenance
t_fails "an image only the old key signed is refused" 1 "no trusted key matched" \
    "$BIN" verify "$job"
t_fails "its provenance can no longer be re-signed: nothing to re-sign (exit 1)" 1 \
    "nothing to re-sign: no provenance of job@sha256:[0-9a-f]+ verifies with a trusted key" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$job" --key new.key
t_eq "  ... and nothing was pushed" "$(att_layers "$job")" 1
env SUBSTRATE_PASSPHRASE=new-pw "$BIN" sign "$job" --key new.key >/dev/null 2>&1
t_fails "signing alone (the old rotation steps) leaves --provenance refused" 1 \
    "the signature verifies, but the provenance does not" "$BIN" verify "$job" --provenance

# ---- substrate attest --------------------------------------------------------------
t_fails "attest --help documents it and points to verify --provenance" 0 \
    "Usage: substrate attest.*verify REF@sha256:<hex> --provenance.*Exit codes:.*Examples:" \
    bash -c "'$BIN' attest --help | tr '\n' ' '"
t_fails "verify --help names --provenance as the verify-attestation check" 0 "verify-attestation" \
    "$BIN" verify --help
printf '{"scanner": "example", "findings": []}\n' >"$T/scan.json"
SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$hello" --key new.key --predicate "$T/scan.json" \
    --type https://example.com/scan/v1 --json >"$T/att.json" 2>"$T/att.err"
t_eq "attest --predicate --type --json exits 0" "$?" 0
t_check "  ... and its JSON names the tag, the key, the type and the count" $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["key_id"] == sys.argv[2] and r["pushed"] is True and r["resigned_from"] is None, r
assert r["predicate_type"] == "https://example.com/scan/v1" and r["attestations"] == 3, r
assert r["attestation_tag"] == "sha256-" + sys.argv[3].split(":")[1] + ".att", r
assert r["statement_digest"].startswith("sha256:") and r["attestation_manifest"].startswith("sha256:"), r
' "$T/att.json" "$NEW" "${hello#*@}"
t_check "  ... the layer is annotated with that predicateType, as cosign attest does" bash -c "
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    'http://$REG/v2/hello/manifests/sha256-${hello#*@sha256:}.att' |
    $PY -c 'import json,sys; l=json.load(sys.stdin)[\"layers\"][-1]; assert l[\"annotations\"][\"predicateType\"]==\"https://example.com/scan/v1\" and l[\"mediaType\"]==\"application/vnd.dsse.envelope.v1+json\", l'"
t_check "verify --provenance still finds the provenance among the attestations" \
    "$BIN" verify "$hello" --provenance
t_fails "--type without --predicate is a usage error" 2 "--type names the type of a --predicate" \
    "$BIN" attest "$hello" --key new.key --type custom
t_fails "a tag-only reference is refused: attest by digest" 2 "attest by digest" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$REG/hello:1.0.0" --key new.key
t_fails "a bad --type is refused" 2 "neither a URI" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$hello" --key new.key --predicate "$T/scan.json" --type "no uri"
t_fails "an SLSA v1 predicate without a source commit is refused" 2 "not SLSA provenance v1" \
    env SUBSTRATE_PASSPHRASE=new-pw "$BIN" attest "$hello" --key new.key --predicate "$T/scan.json" --type slsaprovenance1
t_fails "a wrong passphrase is refused before anything is pushed" 2 "wrong passphrase" \
    env SUBSTRATE_PASSPHRASE=not-it "$BIN" attest "$hello" --key new.key
t_eq "  ... still three attestations" "$(att_layers "$hello")" 3
t_done

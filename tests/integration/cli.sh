#!/usr/bin/env bash
# The command line itself (issue 6 items 7, 8, 10, 14): --help for every
# command, unknown commands and options, usage errors printed once, -o json,
# skopeo's docker:// and oci: forms, inspect's config, --raw and --config,
# JSON output that survives any bytes (non-UTF-8 paths, a long multi-byte
# media type from a registry), and terminal escapes from a registry escaped.
# Registry cases run against tests/tools/hostile-registry.py on loopback.
. "$(dirname "$0")/../lib.sh"

PY=/usr/bin/python3
TOOLS=$TOP/tests/tools
unset SUBSTRATE_PASSPHRASE
cd "$T" || exit 1
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
is_json() { $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }
has_esc() { LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f\x9b]' "$1"; }

# ---- every command answers --help with exit 0 ----------------------------------
cmds=$("$BIN" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p')
[ "$(wc -w <<<"$cmds")" -ge 17 ] && t_ok "substrate --help lists the commands" ||
    t_not_ok "substrate --help lists the commands"
bad=""
for c in $cmds; do
    out=$("$BIN" "$c" --help 2>&1) && grep -q "^Usage: substrate $c" <<<"$out" || bad="$bad $c"
    out=$("$BIN" help "$c" 2>&1) && grep -q "^Usage: substrate $c" <<<"$out" || bad="$bad help:$c"
done
t_eq "every command answers --help with exit 0" "$bad" ""

# ---- unknown commands and options; usage errors --------------------------------
t_fails "an unknown command suggests the nearest one" 2 \
    '^substrate: error: unknown command "verfy"; did you mean "verify"\?' "$BIN" verfy x
t_fails "  ... so does help of an unknown command" 2 'unknown command "verfy"; did you mean "verify"' \
    "$BIN" help verfy
out=$("$BIN" verfy 2>&1)
t_eq "  ... and does not print all the help" "$(wc -l <<<"$out")" 2
t_fails "a command far from any is not guessed" 2 '^substrate: error: unknown command "xyzzy"$' \
    "$BIN" xyzzy
out=$("$BIN" verify --bogus 2>&1); rc=$?
t_eq "an unknown option: the error: prefix, said once, then where to look (exit 2)" "$rc:$out" \
    '2:substrate verify: error: unknown option "--bogus"
Try `substrate verify --help`.'
t_fails "an option without its argument is named" 2 '^substrate sign: error: option --key needs an argument$' \
    "$BIN" sign --key
t_fails "an unknown short option is named" 2 '^substrate pull: error: unknown option "-x"$' \
    "$BIN" pull -x
t_fails "a usage error has the same error: prefix as other errors" 2 \
    '^substrate inspect: error: expected exactly one REF$' "$BIN" inspect

# ---- -o json; non-UTF-8 paths in JSON (item 10) ----------------------------------
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k" >/dev/null
KID=$("$BIN" key id "$T/k.pub")
t_eq "-o json is --json" "$("$BIN" key id "$T/k.pub" -o json)" "$("$BIN" key id "$T/k.pub" --json)"
t_fails "-o text is the default output" 0 "^$KID\$" "$BIN" key id "$T/k.pub" -o text
X=$'\xff\xfe'
cp "$T/k.pub" "$T/k$X.pub"
"$BIN" key id "$T/k$X.pub" --json >"$T/kid.json" 2>"$T/kid.err"
t_eq "key id --json of a non-UTF-8 path: exit 0, no abort" "$?" 0
t_check "  ... valid JSON, the path's bad bytes as U+FFFD" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["key_id"] == sys.argv[2] and j["file"].endswith("/k\ufffd\ufffd.pub"), j
' "$T/kid.json" "$KID"
DIG=sha256:$(printf '%064d' 1)
SUBSTRATE_PASSPHRASE=pw "$BIN" sign --offline --key "$T/k.key" --identity 127.0.0.1:1/x \
    --digest "$DIG" --output-payload "$T/p$X" --output-signature "$T/s$X" 2>/dev/null
"$BIN" verify --offline --json --key "$T/k$X.pub" --payload "$T/p$X" --signature "$T/s$X" \
    --digest "$DIG" --any-repo >"$T/off.json" 2>"$T/off.err"
t_eq "verify --offline --json with a non-UTF-8 key path: exit 0, no abort" "$?" 0
t_check "  ... valid JSON naming the key's file" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["verified"] is True and j["key"]["source"].endswith("/k\ufffd\ufffd.pub"), j
assert j["payload"]["digest"] == sys.argv[2] and j["payload"]["identity"] == "127.0.0.1:1/x", j
' "$T/off.json" "$DIG"
SUBSTRATE_PASSPHRASE=pw "$BIN" sign --offline --key "$T/k.key" --payload "$T/p$X" --json \
    --output-signature "$T/s2$X" >"$T/sign.json" 2>"$T/sign.err"
t_eq "sign --offline --json with non-UTF-8 paths: exit 0" "$?" 0
t_check "  ... valid JSON" is_json "$T/sign.json"

# ---- a hostile registry -----------------------------------------------------------
$PY "$TOOLS/hostile-registry.py" --port-file "$T/hostile.port" --info "$T/hostile.json" >"$T/hostile.log" 2>&1 &
hpid=$!
t_on_exit "kill $hpid"
if ! wait_file "$T/hostile.port"; then
    echo "Bail out! the hostile registry did not start: $(cat "$T/hostile.log")"
    exit 1
fi
H=127.0.0.1:$(cat "$T/hostile.port")
info() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/hostile.json" "$1"; }
GOOD=$(info manifest)

# item 7: skopeo's forms
"$BIN" pull "docker://$H/good:v1" --oci "oci:$T/lay:one" >"$T/pull.out" 2>"$T/pull.err"
t_eq "pull docker://REF --oci oci:DIR:NAME works" "$?:$(cat "$T/pull.out")" "0:$H/good@$GOOD"
t_check "  ... into DIR, with NAME as the ref name (no directory named oci:...)" $PY -c '
import json, os, sys
idx = json.load(open(sys.argv[1] + "/lay/index.json"))
assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in idx["manifests"]] == ["one"], idx
assert not any(n.startswith("oci:") for n in os.listdir(sys.argv[1])), os.listdir(sys.argv[1])
' "$T"
t_fails "pull --oci docker://... is refused, saying what --oci takes" 2 "that is a registry image; --oci takes an OCI layout" \
    "$BIN" pull "$H/good:v1" --oci "docker://$H/x"
t_fails "a REF in another skopeo transport is named as such" 2 "names oci storage, not a registry image" \
    "$BIN" inspect "oci:$T/lay:one"
"$BIN" pull "$H/good:v1" --oci "$T/lay2$X:n" --json >"$T/pullj.json" 2>"$T/pullj.err"
t_eq "pull --json into a non-UTF-8 path: exit 0, no abort" "$?" 0
t_check "  ... valid JSON: digest_ref, layout, layout_name" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["digest_ref"] == sys.argv[2] and j["layout"].endswith("/lay2\ufffd\ufffd") and j["layout_name"] == "n", j
assert set(j) == {"digest_ref", "digest", "media_type", "size", "layout", "layout_name"}, j
' "$T/pullj.json" "$H/good@$GOOD"

# item 8: inspect shows the config; --raw and --config give the bytes
out=$("$BIN" inspect "$H/configured:v1" 2>&1)
if grep -q '^Entrypoint: /bin/hello --serve$' <<<"$out" && grep -q '^Cmd:        --port 8080$' <<<"$out" &&
   grep -q '^User:       65532:65532$' <<<"$out" && grep -q '^WorkingDir: /srv$' <<<"$out" &&
   grep -q '^Ports:      53/udp 8080/tcp$' <<<"$out" && grep -q '^  MODE=test$' <<<"$out"; then
    t_ok "inspect shows entrypoint, cmd, user, workdir, exposed ports and env"
else t_not_ok "inspect shows entrypoint, cmd, user, workdir, exposed ports and env"; t_diag "$out"; fi
"$BIN" inspect "$H/configured:v1" --json >"$T/ins.json"
t_check "  ... and so does --json (snake_case)" $PY -c '
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["entrypoint"] == ["/bin/hello", "--serve"] and c["cmd"] == ["--port", "8080"], c
assert c["env"] == ["PATH=/usr/bin:/bin", "MODE=test"] and c["user"] == "65532:65532", c
assert c["workdir"] == "/srv" and c["exposed_ports"] == ["53/udp", "8080/tcp"], c
assert c["media_type"] == "application/vnd.oci.image.config.v1+json", c
' "$T/ins.json"
"$BIN" inspect "$H/configured:v1" --raw >"$T/raw"
t_eq "inspect --raw prints the manifest bytes" "sha256:$(sha256sum <"$T/raw" | cut -d' ' -f1)" \
    "$(info configured_manifest)"
"$BIN" inspect "docker://$H/configured:v1" --config >"$T/config"
t_eq "inspect --config prints the config bytes" "sha256:$(sha256sum <"$T/config" | cut -d' ' -f1)" \
    "$(info configured_config)"
t_fails "--raw and --json do not combine" 2 "give one of --json, --raw or --config" \
    "$BIN" inspect "$H/configured:v1" --raw --json

# item 7: one naming style: every field of every JSON output is snake_case
# (the members of labels and annotations are data, not fields)
"$BIN" registry status --json >"$T/status.json" 2>/dev/null
"$BIN" push --oci "$T/lay:one" "$H/pushed:v1" --json >"$T/push.json" 2>/dev/null
t_check "JSON fields are snake_case in key, verify --offline, pull, push, inspect, registry status" $PY -c '
import json, re, sys
def walk(v, path):
    if isinstance(v, dict):
        for k, x in v.items():
            assert re.fullmatch("[a-z0-9_]+", k), (path, k)
            if k not in ("labels", "annotations", "statement"):
                walk(x, path + "." + k)
    elif isinstance(v, list):
        for x in v:
            walk(x, path)
for f in sys.argv[1:]:
    walk(json.load(open(f)), f)
' "$T/kid.json" "$T/off.json" "$T/pullj.json" "$T/push.json" "$T/ins.json" "$T/status.json"

# item 10: a signature manifest whose media type is long multi-byte UTF-8 (the
# message quoting it is cut at 1 KiB; one of the three alignments cuts a character)
for n in 0 1 2; do
    "$BIN" verify "$H/utf8-sig-$n@$GOOD" --key "$T/k.pub" --json >"$T/u8.json" 2>"$T/u8.err"; rc=$?
    t_eq "verify --json, signature media type of 3-byte characters (alignment $n): exit 1, no abort" "$rc" 1
    t_check "  ... its JSON is valid, the message cut at a character" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["verified"] is False and "\u20ac\u20ac" in j["message"] and "\ufffd" not in j["message"], j
assert j["reason"] == "malformed_signature" or j["reason"], j
' "$T/u8.json"
done

# item 14: terminal escapes from the registry are escaped
"$BIN" inspect "$H/escape-error:v1" >"$T/e1.out" 2>"$T/e1.err"; rc=$?
t_eq "an error body with terminal escapes: still an error (exit 2)" "$rc" 2
if ! has_esc "$T/e1.err" && grep -q 'MANIFEST_UNKNOWN\\x1b\[2J\\x1b\[H\\x1b\[32mVerified OK' "$T/e1.err" &&
   grep -q '\\x1b\]0;owned\\x07\\xc2\\x9b31m' "$T/e1.err"; then
    t_ok "  ... printed with every control character as \\xNN (ESC, BEL, C1 CSI)"
else t_not_ok "  ... printed with every control character as \\xNN (ESC, BEL, C1 CSI)"; t_diag "$(cat -v "$T/e1.err")"; fi
"$BIN" pull "$H/escape-error:v1" --oci "$T/e2" >/dev/null 2>"$T/e2.err"
has_esc "$T/e2.err" && t_not_ok "pull: the same error body, escaped" || t_ok "pull: the same error body, escaped"
"$BIN" verify "$H/escape-sig@$GOOD" --key "$T/k.pub" >/dev/null 2>"$T/e3.err"; rc=$?
if [ "$rc" = 1 ] && ! has_esc "$T/e3.err" && grep -q 'application/x-\\x1b\[2J' "$T/e3.err"; then
    t_ok "verify: a media type with terminal escapes is quoted escaped (exit 1)"
else t_not_ok "verify: a media type with terminal escapes is quoted escaped (exit 1)"; t_diag "$rc $(cat -v "$T/e3.err")"; fi
"$BIN" inspect "$H/escape-config:v1" >"$T/e4.out" 2>&1; rc=$?
if [ "$rc" = 0 ] && ! has_esc "$T/e4.out" && grep -q '^  org.example.hostile=\\x1b\[2J' "$T/e4.out" &&
   grep -q '^  A=\\x1b\[2J' "$T/e4.out"; then
    t_ok "inspect: labels, env and cmd with terminal escapes are printed escaped"
else t_not_ok "inspect: labels, env and cmd with terminal escapes are printed escaped"; t_diag "$(cat -v "$T/e4.out")"; fi
t_done

#!/usr/bin/env bash
# Opening the signing key (issue 6, item 5): the key file is checked before
# the passphrase (a missing file, or a .pub given as the key, is reported as
# such, never as a missing passphrase, and never prompted for), and the
# passphrase comes from $SUBSTRATE_PASSPHRASE, else cosign's $COSIGN_PASSWORD.
. "$(dirname "$0")/../lib.sh"
F=$TOP/tests/fixtures/cosign
unset SUBSTRATE_PASSPHRASE COSIGN_PASSWORD
D=sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455
cd "$T" || exit 1
SUBSTRATE_PASSPHRASE=pw-1 "$BIN" key generate "$T/k" >/dev/null
ID=$("$BIN" key id "$T/k.pub")

# No passphrase source, no terminal (setsid: no controlling tty): only the key
# file can be the problem named, and it is named at once.
nothty() { timeout 10 setsid -w "$@" </dev/null; }
start=$SECONDS
out=$(nothty "$BIN" sign --offline --key "$T/nokey.key" --identity 127.0.0.1:5000/hello \
    --digest "$D" --output-payload "$T/never.json" 2>&1); rc=$?
if [ "$rc" = 2 ] && grep -q "cannot open the signing key $T/nokey\.key: No such file" <<<"$out" &&
   ! grep -qi "passphrase\|terminal" <<<"$out"; then
    t_ok "a missing key file is reported as such, not as a missing passphrase"
else t_not_ok "a missing key file is reported as such, not as a missing passphrase"; t_diag "exit $rc" "$out"; fi
t_eq "  ... at once" "$(( SECONDS - start < 5 ))" 1
t_eq "  ... and nothing is written" "$(ls "$T/never.json" 2>/dev/null)" ""

out=$(nothty "$BIN" sign --offline --key "$T/k.pub" --payload "$F/payload.json" 2>&1); rc=$?
if [ "$rc" = 2 ] && grep -q "$T/k\.pub is a public key; signing needs the private key $T/k\.key" <<<"$out" &&
   ! grep -qi "passphrase\|terminal" <<<"$out"; then
    t_ok "a .pub given as the key names the private key to use"
else t_not_ok "a .pub given as the key names the private key to use"; t_diag "exit $rc" "$out"; fi

# At a terminal (a pseudo-terminal stands in): no prompt for a key file that
# is not there; the error comes at once.
pty_sign() { # key -> "exit N" and "prompted" when a passphrase prompt appeared
    /usr/bin/python3 - "$BIN" "$1" "$F/payload.json" <<'PYEOF'
import os, pty, select, signal, sys, time
binp, key, payload = sys.argv[1:4]
env = {k: v for k, v in os.environ.items() if k not in ("SUBSTRATE_PASSPHRASE", "COSIGN_PASSWORD")}
pid, fd = pty.fork()
if pid == 0:
    os.execve(binp, [binp, "sign", "--offline", "--key", key, "--payload", payload], env)
out, end, st = b"", time.time() + 10, None
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try: d = os.read(fd, 4096)
        except OSError: d = b""
        out += d
    p, s = os.waitpid(pid, os.WNOHANG)
    if p:
        st = s
        break
if st is None:  # still waiting (at a prompt): stop it
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("exit", "none" if st is None else os.waitstatus_to_exitcode(st),
      "prompted" if b"Passphrase for" in out else "no-prompt")
PYEOF
}
t_eq "at a terminal, a missing key file is refused without a passphrase prompt" \
    "$(pty_sign "$T/nokey.key")" "exit 2 no-prompt"
t_eq "  ... and so is a .pub given as the key" "$(pty_sign "$T/k.pub")" "exit 2 no-prompt"

# registry mode opens the key the same way (before any registry is contacted)
t_fails "sign REF: a .pub given as the key is refused the same way" 2 "is a public key; signing needs the private key" \
    nothty "$BIN" sign "127.0.0.1:1/hello@$D" --key "$T/k.pub"
printf 'not a key\n' >"$T/junk.key"
t_fails "a file that is not a key is named as such" 2 "junk\.key is not a PEM file.*cosign private key" \
    nothty "$BIN" sign --offline --key "$T/junk.key" --payload "$F/payload.json"
# with a key file that is fine, the missing passphrase is what is reported
t_fails "a good key file and no passphrase: the passphrase is reported" 2 \
    "no passphrase for key .*k\.key and no terminal.*COSIGN_PASSWORD" \
    nothty "$BIN" sign --offline --key "$T/k.key" --payload "$F/payload.json"

# ---- passphrase order: SUBSTRATE_PASSPHRASE, then COSIGN_PASSWORD ------------
t_fails "COSIGN_PASSWORD opens the key" 0 "Signed payload sha256:[0-9a-f]{64} with key $ID" \
    env COSIGN_PASSWORD=pw-1 "$BIN" sign --offline --key "$T/k.key" --payload "$F/payload.json" \
    --output-signature "$T/s1.b64"
t_fails "SUBSTRATE_PASSPHRASE wins over COSIGN_PASSWORD" 2 \
    "wrong passphrase" \
    env SUBSTRATE_PASSPHRASE=not-it COSIGN_PASSWORD=pw-1 "$BIN" sign --offline --key "$T/k.key" \
    --payload "$F/payload.json"
t_fails "  ... and the refusal says where the passphrase came from" 2 \
    "passphrase taken from \\\$SUBSTRATE_PASSPHRASE; $T/k\.pub is key $ID" \
    env SUBSTRATE_PASSPHRASE=not-it COSIGN_PASSWORD=pw-1 "$BIN" sign --offline --key "$T/k.key" \
    --payload "$F/payload.json"
t_fails "SUBSTRATE_PASSPHRASE right, COSIGN_PASSWORD wrong: signs" 0 "Signed payload" \
    env SUBSTRATE_PASSPHRASE=pw-1 COSIGN_PASSWORD=not-it "$BIN" sign --offline --key "$T/k.key" \
    --payload "$F/payload.json" --output-signature "$T/s2.b64"
t_fails "a wrong COSIGN_PASSWORD names it as the source" 2 "passphrase taken from \\\$COSIGN_PASSWORD" \
    env COSIGN_PASSWORD=not-it "$BIN" sign --offline --key "$T/k.key" --payload "$F/payload.json"
out=$(nothty "$BIN" sign --offline --key "$T/k.pub" --payload "$F/payload.json" --json 2>/dev/null); rc=$?
t_check "--json: the error on stdout names the reason public_key_given" /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["reason"] == "public_key_given" and r["exit_code"] == int(sys.argv[2]) == 2, r
assert "is a public key" in r["error"], r
' "$out" "$rc"
t_fails "sign --help documents COSIGN_PASSWORD" 0 "COSIGN_PASSWORD" "$BIN" sign --help
t_done

#!/usr/bin/env bash
# Blob signatures in cosign's sign-blob format: sign-blob writes FILE.sig,
# verify-blob checks it against --key or the trust store; openssl agrees both
# ways (our signature verifies with `openssl dgst -verify`, openssl's with
# verify-blob); an altered file, another key, a malformed signature and a
# missing signature are refused, each with its reason.
. "$(dirname "$0")/../lib.sh"
F=$TOP/tests/fixtures/cosign
unset SUBSTRATE_PASSPHRASE
cd "$T" || exit 1
printf '{"name": "job", "timeout": 60}\n' >job.json
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k" >/dev/null
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/other" >/dev/null
printf pw >pass

t_check "sign-blob: exit 0" "$BIN" sign-blob job.json --key k.key --passphrase-file pass
t_check "it wrote job.json.sig" test -s job.json.sig
t_eq "one line of base64" "$(wc -l <job.json.sig) $(grep -cE '^[A-Za-z0-9+/]+=*$' job.json.sig)" "1 1"
out=$("$BIN" verify-blob job.json --key k.pub); rc=$?
t_eq "verify-blob with its key: exit 0, names the key" "$rc $(echo "$out" | grep -c "signed by key $("$BIN" key id k.pub)")" "0 1"
base64 -d job.json.sig >sig.der
t_check "openssl agrees: ECDSA P-256 / SHA-256 over the file's bytes" \
    openssl dgst -sha256 -verify k.pub -signature sig.der job.json
openssl dgst -sha256 -sign "$F/private-key.pkcs8.pem" -out ossl.der job.json
base64 -w0 ossl.der >ossl.sig
t_check "openssl's signature (the vector key) verifies with verify-blob" \
    "$BIN" verify-blob job.json --key "$F/cosign.pub" --signature ossl.sig

json() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["verified"], d["reason"])'; }
cp job.json altered.json; printf ' ' >>altered.json; cp job.json.sig altered.json.sig
t_fails "an altered file: refused (exit 1)" 1 "no trusted key matched" "$BIN" verify-blob altered.json --key k.pub
t_eq "  ... --json says no_trusted_key" "$("$BIN" verify-blob altered.json --key k.pub --json 2>/dev/null | json)" "False no_trusted_key"
t_fails "another key: refused (exit 1)" 1 "no trusted key matched" "$BIN" verify-blob job.json --key other.pub
printf 'bm90IGEgc2lnbmF0dXJl\n' >bad.sig
t_eq "a malformed signature: refused, malformed_signature" \
    "$("$BIN" verify-blob job.json --key k.pub --signature bad.sig --json 2>/dev/null | json)" "False malformed_signature"
t_fails "no signature file: exit 2, names it" 2 "job2.json.sig" bash -c "cp job.json job2.json && '$BIN' verify-blob job2.json --key k.pub"
t_fails "no trust store and no --key: exit 3, says how to add one" 3 "trust store.*pass --key" "$BIN" verify-blob job.json
"$BIN" key trust k.pub >/dev/null
t_check "with the key in the trust store: verified" "$BIN" verify-blob job.json
t_fails "a wrong passphrase signs nothing (exit 2)" 2 "passphrase" bash -c "printf nope >bad && '$BIN' sign-blob job.json --key k.key --passphrase-file bad --output-signature never.sig"
t_false() { local d=$1; shift; if "$@" >/dev/null 2>&1; then t_not_ok "$d"; else t_ok "$d"; fi; }
t_false "  ... and writes no signature file" test -e never.sig
t_check "--help" "$BIN" sign-blob --help
t_check "--help" "$BIN" verify-blob --help
t_done

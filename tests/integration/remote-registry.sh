#!/usr/bin/env bash
# Remote registries, as users have them, all on loopback: docker-registry with
# TLS from a test CA (no CA / a wrong CA refused, the right one accepted for
# push, pull, sign and verify), docker-registry in token-auth mode behind a
# small token issuer (tests/tools/token-issuer.py, over TLS too): login,
# logout, wrong passwords, scopes, auth.json / docker config.json; and blob
# redirects to "object storage" that must never receive credentials
# (tests/tools/blob-redirector.py).
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
TOOLS=$TOP/tests/tools
unset SUBSTRATE_PASSPHRASE SUBSTRATE_REGISTRY_USER SUBSTRATE_REGISTRY_PASSWORD SUBSTRATE_CA_FILE \
    SUBSTRATE_REGISTRY_TLS SUBSTRATE_INSECURE_REGISTRIES REGISTRY_AUTH_FILE XDG_RUNTIME_DIR
export HOME=$T/home
mkdir -p "$HOME"

wait_line() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# ---- certificates: a test CA, a server certificate for 127.0.0.1, a wrong CA,
# and the token signing key with its self-signed certificate ----
C=$T/certs
mkdir -p "$C"
(
    cd "$C" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=substrate test CA" -keyout ca.key -out ca.crt
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=some other CA" -keyout wrong.key -out wrong.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.crt
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=substrate test token signer" -keyout jwt.key -out jwt.crt
) >"$T/openssl.log" 2>&1
if [ ! -s "$C/server.crt" ] || [ ! -s "$C/jwt.crt" ]; then
    echo "Bail out! cannot make test certificates: $(cat "$T/openssl.log")"
    exit 1
fi

# start_registry NAME PORT [extra config lines]: docker-registry with TLS, stopped on exit
start_registry() {
    local name=$1 port=$2 extra=${3:-}
    mkdir -p "$T/$name"
    cat >"$T/$name/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: "$T/$name/data"
  delete:
    enabled: true
http:
  addr: "127.0.0.1:$port"
  tls:
    certificate: "$C/server.crt"
    key: "$C/server.key"
$extra
EOF
    docker-registry serve "$T/$name/config.yml" >"$T/$name/log" 2>&1 &
    local pid=$!
    t_on_exit "kill $pid"
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --cacert "$C/ca.crt" \
            "https://127.0.0.1:$port/v2/") || true
        case $code in 200|401) return 0 ;; esac
        sleep 0.1
    done
    echo "Bail out! docker-registry $name did not start: $(tail -5 "$T/$name/log")"
    exit 1
}

# ---- a small image made with umoci ----
L=$T/L
umoci init --layout "$L" >/dev/null 2>&1 && umoci new --image "$L:t" >/dev/null 2>&1 &&
    umoci unpack --image "$L:t" "$T/bundle" >/dev/null 2>&1 &&
    head -c 300000 /dev/urandom >"$T/bundle/rootfs/random.bin" &&
    umoci repack --image "$L:t" "$T/bundle" >/dev/null 2>&1
if [ ! -s "$L/index.json" ]; then echo "Bail out! cannot build the test image with umoci"; exit 1; fi
SUBSTRATE_PASSPHRASE=pw "$BIN" key generate "$T/k" >/dev/null

# ===================== TLS with a test CA =====================
P1=$(t_free_port)
start_registry tls "$P1"
R1=127.0.0.1:$P1
export SUBSTRATE_REGISTRY_TLS=1

t_fails "https to a registry whose CA is not trusted fails with a certificate error (exit 3)" 3 \
    "certificate could not be verified.*SUBSTRATE_CA_FILE" \
    "$BIN" push --oci "$L:t" "$R1/t/img:v1"
t_fails "the same with a wrong CA file" 3 "certificate could not be verified" \
    env SUBSTRATE_CA_FILE="$C/wrong.crt" "$BIN" push --oci "$L:t" "$R1/t/img:v1"
t_fails "a CA file that does not exist is a usage error naming it (exit 2)" 2 "$C/nope.pem" \
    env SUBSTRATE_CA_FILE="$C/nope.pem" "$BIN" push --oci "$L:t" "$R1/t/img:v1"
t_eq "nothing reached the registry without a trusted certificate" \
    "$(curl -s --noproxy '*' --cacert "$C/ca.crt" "https://$R1/v2/t/img/tags/list" | grep -c v1)" 0

t_fails "--ca-file with a wrong CA is refused the same way" 3 "certificate could not be verified" \
    "$BIN" push --ca-file "$C/wrong.crt" --oci "$L:t" "$R1/t/img:v1"
t_check "--ca-file FILE (anywhere among the options) trusts that CA: inspect an absent tag gets an answer" \
    bash -c "'$BIN' inspect '$R1/t/none:v0' --ca-file '$C/ca.crt' 2>&1 | grep -q 'no such manifest'"
t_check "--ca-file=FILE works too, and wins over a wrong SUBSTRATE_CA_FILE" \
    bash -c "SUBSTRATE_CA_FILE='$C/wrong.crt' '$BIN' inspect --ca-file='$C/ca.crt' '$R1/t/none:v0' 2>&1 | grep -q 'no such manifest'"
t_fails "--ca-file on a command that talks to no registry is a usage error" 2 \
    "--ca-file is for the commands that talk to a registry" "$BIN" key id --ca-file "$C/ca.crt" "$T/k.pub"

export SUBSTRATE_CA_FILE=$C/ca.crt
out=$("$BIN" push --oci "$L:t" "$R1/t/img:v1" 2>&1); rc=$?
t_eq "push over https with the right CA exits 0" "$rc" 0
D=$(awk '{print $NF}' <<<"$out" | tail -n1); D=${D#*@}
if [[ $D != sha256:* ]]; then t_diag "$out"; fi
t_check "pull over https with the right CA" "$BIN" pull "$R1/t/img@$D" --oci "$T/p1:x"
t_check "sign over https" env SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$R1/t/img@$D" --key "$T/k.key"
t_fails "verify over https" 0 "Verified OK|verified" "$BIN" verify "$R1/t/img@$D" --key "$T/k.pub"
t_fails "inspect over https" 0 "$D" "$BIN" inspect "$R1/t/img:v1"
t_fails "plain http to the TLS registry is answered with an error, not silently" 3 "HTTP 400" \
    env SUBSTRATE_REGISTRY_TLS=0 "$BIN" inspect "$R1/t/img:v1"
t_fails "SUBSTRATE_REGISTRY_TLS takes 0 or 1" 2 "SUBSTRATE_REGISTRY_TLS=yes" \
    env SUBSTRATE_REGISTRY_TLS=yes "$BIN" inspect "$R1/t/img:v1"
# a loopback registry never goes through a proxy, even when one is configured
DEAD=$(t_free_port)
t_check "loopback registries ignore https_proxy / http_proxy / ALL_PROXY" \
    env https_proxy=http://127.0.0.1:$DEAD http_proxy=http://127.0.0.1:$DEAD \
    ALL_PROXY=http://127.0.0.1:$DEAD "$BIN" inspect "$R1/t/img:v1"

# ===================== token auth (TLS registry, TLS token service) =====================
TP=$(t_free_port)
$PY "$TOOLS/token-issuer.py" --port "$TP" --sign-key "$C/jwt.key" --sign-cert "$C/jwt.crt" \
    --issuer substrate-test-issuer --service substrate-test \
    --user alice:right-pw:pull,push --user reader:read-pw:pull \
    --tls-cert "$C/server.crt" --tls-key "$C/server.key" --log "$T/tokens.log" \
    >"$T/issuer.out" 2>&1 &
ipid=$!
t_on_exit "kill $ipid"
if ! wait_line "$T/issuer.out" || ! grep -q ready "$T/issuer.out"; then
    echo "Bail out! token issuer did not start: $(cat "$T/issuer.out")"; exit 1
fi
P2=$(t_free_port)
start_registry token "$P2" "auth:
  token:
    realm: \"https://127.0.0.1:$TP/token\"
    service: substrate-test
    issuer: substrate-test-issuer
    rootcertbundle: \"$C/jwt.crt\""
R2=127.0.0.1:$P2
AUTHF=$SUBSTRATE_STATE/auth.json

t_fails "token registry: anonymous push is refused, pointing at login (exit 3)" 3 \
    "requires authentication.*substrate login $R2" \
    "$BIN" push --oci "$L:t" "$R2/t/img:v1"
t_fails "login with a wrong password is refused (exit 3)" 3 "rejected the credentials of user \"alice\"" \
    bash -c "printf 'wrong\n' | '$BIN' login '$R2' -u alice --password-stdin"
t_check "nothing was stored after the refused login" test ! -e "$AUTHF"
t_fails "login with the right password succeeds" 0 "Login succeeded.*$AUTHF" \
    bash -c "printf 'right-pw\n' | '$BIN' login '$R2' -u alice --password-stdin"
t_eq "auth.json is mode 0600" "$(stat -c %a "$AUTHF")" 600
t_eq "auth.json has the docker/containers format" \
    "$($PY -c 'import json,sys,base64; print(base64.b64decode(json.load(open(sys.argv[1]))["auths"][sys.argv[2]]["auth"]).decode())' "$AUTHF" "$R2")" \
    "alice:right-pw"
: >"$T/tokens.log"
out=$("$BIN" push --oci "$L:t" "$R2/t/img:v1" 2>&1); rc=$?
t_eq "push with the stored credentials (token auth) exits 0" "$rc" 0
[ "$rc" = 0 ] || t_diag "$out"
D2=$(awk '{print $NF}' <<<"$out" | tail -n1); D2=${D2#*@}
ntok=$(grep -c granted "$T/tokens.log")
t_check "tokens are cached per scope: at most 3 token requests for a whole push (got $ntok)" \
    test "$ntok" -ge 1 -a "$ntok" -le 3
t_check "the token requests carried alice's credentials" grep -q '"user": "alice"' "$T/tokens.log"
t_check "pull with token auth" "$BIN" pull "$R2/t/img@$D2" --oci "$T/p2:x"
t_check "sign with token auth" env SUBSTRATE_PASSPHRASE=pw "$BIN" sign "$R2/t/img@$D2" --key "$T/k.key"
t_fails "verify with token auth" 0 "Verified OK|verified" "$BIN" verify "$R2/t/img@$D2" --key "$T/k.pub"

# scopes: a user who may only pull gets a pull token, which cannot push
t_fails "logout removes the entry" 0 "Removed the credentials for $R2" "$BIN" logout "$R2"
t_fails "a second logout says there was nothing (exit 2)" 2 "no stored credentials for $R2" \
    "$BIN" logout "$R2"
t_check "login as the pull-only user" bash -c "printf 'read-pw' | '$BIN' login '$R2' -u reader --password-stdin"
t_check "the pull-only user can pull" "$BIN" pull "$R2/t/img@$D2" --oci "$T/p3:x"
t_fails "the pull-only user cannot push: the registry refuses its token (exit 3)" 3 \
    "refused the token for scope \"repository:t/other:.*push.*user \"reader\" may not" \
    "$BIN" push --oci "$L:t" "$R2/t/other:v1"
t_fails "SUBSTRATE_REGISTRY_USER/PASSWORD come before the auth file" 0 "$R2/t/other@" \
    env SUBSTRATE_REGISTRY_USER=alice SUBSTRATE_REGISTRY_PASSWORD=right-pw \
    "$BIN" push --oci "$L:t" "$R2/t/other:v1"
t_fails "wrong credentials in the environment are named as such" 3 \
    "rejected the credentials of user \"alice\".*SUBSTRATE_REGISTRY_USER" \
    env SUBSTRATE_REGISTRY_USER=alice SUBSTRATE_REGISTRY_PASSWORD=nope \
    "$BIN" pull "$R2/t/img@$D2" --oci "$T/p4:x"
"$BIN" logout "$R2" >/dev/null 2>&1
# the other places credentials are read from
mkdir -p "$HOME/.docker" "$T/xdg/containers"
b64=$(printf 'alice:right-pw' | base64)
printf '{"auths":{"https://%s/v1/":{"auth":"%s"}},"credsStore":"none"}\n' "$R2" "$b64" >"$HOME/.docker/config.json"
t_check "credentials from ~/.docker/config.json" "$BIN" push --oci "$L:t" "$R2/t/docker:v1"
rm -f "$HOME/.docker/config.json"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$R2" "$b64" >"$T/xdg/containers/auth.json"
t_check "credentials from \${XDG_RUNTIME_DIR}/containers/auth.json" \
    env XDG_RUNTIME_DIR="$T/xdg" "$BIN" push --oci "$L:t" "$R2/t/xdg:v1"
t_check "REGISTRY_AUTH_FILE is read (and written by login)" bash -c \
    "printf 'right-pw' | REGISTRY_AUTH_FILE='$T/ra.json' '$BIN' login '$R2' -u alice --password-stdin >/dev/null &&
     REGISTRY_AUTH_FILE='$T/ra.json' '$BIN' push --oci '$L:t' '$R2/t/ra:v1' && ! grep -q '$R2' '$AUTHF' && grep -q '$R2' '$T/ra.json'"
t_fails "a token service whose CA is not trusted is refused with a certificate error" 3 \
    "token.*certificate could not be verified|certificate could not be verified" \
    env SUBSTRATE_CA_FILE="$C/wrong.crt" SUBSTRATE_REGISTRY_USER=alice SUBSTRATE_REGISTRY_PASSWORD=right-pw \
    "$BIN" pull "$R2/t/img@$D2" --oci "$T/p5:x"
# a registry that does not trust the token service's signing certificate
P4=$(t_free_port)
start_registry mistrust "$P4" "auth:
  token:
    realm: \"https://127.0.0.1:$TP/token\"
    service: substrate-test
    issuer: substrate-test-issuer
    rootcertbundle: \"$C/wrong.crt\""
t_fails "a token the registry does not accept is reported as a registry/token-service mismatch" 3 \
    "refused the token its token service https://127.0.0.1:$TP/token has just issued.*invalid_token" \
    env SUBSTRATE_REGISTRY_USER=alice SUBSTRATE_REGISTRY_PASSWORD=right-pw \
    "$BIN" pull "127.0.0.1:$P4/t/img:v1" --oci "$T/p15:x"
unset SUBSTRATE_REGISTRY_TLS SUBSTRATE_CA_FILE

# ===================== blob redirects =====================
t_registry
R3=$SUBSTRATE_REGISTRY
for repo in r/img loop/img mredir/img insecure/img; do
    "$BIN" push --oci "$L:t" "$R3/$repo:v1" >/dev/null 2>&1 || { echo "Bail out! cannot push $repo"; exit 1; }
done
$PY "$TOOLS/blob-redirector.py" --registry "$R3" --log "$T/storage.log" >"$T/redir.out" 2>&1 &
rpid=$!
t_on_exit "kill $rpid"
if ! wait_line "$T/redir.out" || ! grep -q ready "$T/redir.out"; then
    echo "Bail out! redirector did not start: $(cat "$T/redir.out")"; exit 1
fi
read -r _ FP _ <"$T/redir.out"
RF=127.0.0.1:$FP
mkdir -p "$HOME/.docker"
printf '{"auths": [' >"$HOME/.docker/config.json"
t_check "a broken ~/.docker/config.json does not stop a registry that asks for no credentials" \
    "$BIN" pull "$R3/r/img:v1" --oci "$T/p16:x"
t_fails "it is named when a registry asks for credentials" 2 "$HOME/.docker/config.json" \
    "$BIN" pull "$RF/r/img:v1" --oci "$T/p17:x"
rm -f "$HOME/.docker/config.json"
export SUBSTRATE_REGISTRY_USER=u SUBSTRATE_REGISTRY_PASSWORD=p
t_check "pull follows blob redirects to another host:port" "$BIN" pull "$RF/r/img:v1" --oci "$T/p6:x"
t_check "the blobs came from the storage port" grep -q '"/v2/r/img/blobs/sha256:' "$T/storage.log"
t_eq "no request to the storage port carried an Authorization header" \
    "$(grep -c '"authorization": true' "$T/storage.log")" 0
t_fails "a redirect loop is cut after a few hops (exit 3)" 3 "redirected more than [0-9]+ times" \
    "$BIN" pull "$RF/loop/img:v1" --oci "$T/p7:x"
t_fails "manifests do not follow redirects" 3 "HTTP 307" \
    "$BIN" pull "$RF/mredir/img:v1" --oci "$T/p8:x"
t_fails "https to a plain-http registry: a TLS handshake error that names the fix (exit 3)" 3 \
    "TLS handshake failed.*unset SUBSTRATE_REGISTRY_TLS" \
    env SUBSTRATE_REGISTRY_TLS=1 "$BIN" pull "$R3/r/img:v1" --oci "$T/p14:x"
t_fails "login to a registry that never asks for credentials stores them with a warning" 0 \
    "did not ask for credentials, so they could not be checked" \
    bash -c "printf 'x' | '$BIN' login '$R3' -u someone --password-stdin"
t_fails "login without -u and without a terminal is a usage error" 2 "pass -u USER" \
    setsid -w "$BIN" login "$R3" --password-stdin </dev/null
t_fails "login without --password-stdin and without a terminal is a usage error" 2 \
    "pass --password-stdin" setsid -w "$BIN" login "$R3" -u someone </dev/null
t_fails "login of something that is not a registry address is a usage error" 2 "not a registry address" \
    "$BIN" login "$R3/repo" -u a --password-stdin </dev/null
for c in login logout; do
    t_fails "$c --help documents usage, exit codes and examples" 0 'Exit codes:.*' \
        bash -c "'$BIN' $c --help | tr '\n' ' ' | grep -E 'Usage: substrate $c.*Exit codes:.*Examples:'"
done

# [::ffff:127.0.0.1] is loopback on the wire but not by Substrate's definition
# (127.0.0.0/8, localhost, [::1]): it stands in for a remote host, safely.
t_fails "a blob redirect to plain http on a non-loopback host is refused (exit 3)" 3 \
    "refusing plain http to \[::ffff:127.0.0.1\]" \
    "$BIN" pull "$RF/insecure/img:v1" --oci "$T/p9:x"
t_fails "a token realm on plain http on a non-loopback host is refused" 3 \
    "refusing plain http to \[::ffff:127.0.0.1\]:[0-9]+ \(for the registry at $RF\)" \
    "$BIN" pull "$RF/badrealm/img:v1" --oci "$T/p10:x"
t_eq "and nothing reached the storage port in plain http for those" \
    "$(grep -c 'insecure/img\|badrealm' "$T/storage.log")" 0
unset SUBSTRATE_REGISTRY_USER SUBSTRATE_REGISTRY_PASSWORD

# ===================== proxies from the environment =====================
$PY "$TOOLS/http-proxy.py" --target "${R3##*:}" --log "$T/proxy.log" >"$T/proxy.out" 2>&1 &
ppid_=$!
t_on_exit "kill $ppid_"
if ! wait_line "$T/proxy.out"; then echo "Bail out! proxy did not start"; exit 1; fi
read -r _ PP <"$T/proxy.out"
RX="[::ffff:127.0.0.1]:${R3##*:}"
t_check "a non-loopback registry (listed insecure) goes through http_proxy" \
    env http_proxy=http://127.0.0.1:$PP SUBSTRATE_INSECURE_REGISTRIES="$RX" \
    "$BIN" pull "$RX/r/img:v1" --oci "$T/p11:x"
t_check "the proxy saw the absolute request for that registry" grep -q "GET http://\[::ffff:127.0.0.1\]:${R3##*:}/v2/" "$T/proxy.log"
: >"$T/proxy.log"
t_check "a loopback registry does not, with the same http_proxy" \
    env http_proxy=http://127.0.0.1:$PP "$BIN" pull "$R3/r/img:v1" --oci "$T/p12:x"
t_eq "the proxy saw nothing for the loopback registry" "$(wc -l <"$T/proxy.log")" 0
: >"$T/proxy.log"
t_fails "a non-loopback registry not listed insecure is spoken to over https (fails here: no TLS)" 3 \
    "CONNECT tunnel failed|TLS|SSL|certificate" \
    env https_proxy=http://127.0.0.1:$PP "$BIN" pull "$RX/r/img:v1" --oci "$T/p13:x"
t_check "it asked https_proxy for a TLS tunnel, never for plain http" \
    bash -c "grep -q '^CONNECT \[::ffff:127.0.0.1\]:${R3##*:} ' '$T/proxy.log' && ! grep -q '^GET' '$T/proxy.log'"

t_done

#!/usr/bin/env bash
# Deterministic builds from an exact commit, pushed to a real docker-registry,
# read back by the peer tools (skopeo, umoci), and every refusal of bad input.
. "$(dirname "$0")/../lib.sh"
CHECK=$TOP/tests/tools/oci-schema-check

# A private clone we are free to dirty and to commit broken specs into.
git clone -q "$TOP" "$T/repo"
git -C "$T/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m "test base" 2>/dev/null
R=$T/repo
SHA=$(git -C "$R" rev-parse HEAD)
b() { "$BIN" build --repo "$R" "$@"; }

t_registry
REG=$SUBSTRATE_REGISTRY

# --- reproducibility: different state dirs (so different export paths), umask and TZ
d1=$(cd /tmp && umask 022 && TZ=UTC SUBSTRATE_STATE=$T/s1 b hello --version 1.0.0 --rev "$SHA" --no-push -q | awk '{print $NF}')
d2=$(cd / && umask 077 && TZ=Asia/Tokyo SUBSTRATE_STATE=$T/s2/a/much/longer/path b hello --version 1.0.0 --rev "$SHA" --no-push -q | awk '{print $NF}')
if [[ $d1 == sha256:* ]]; then t_eq "hello: same commit in different export dirs, umasks and TZ -> same digest" "$d2" "$d1"
else t_not_ok "hello: --no-push build printed a digest"; t_diag "got '$d1'"; fi
d3=$(SUBSTRATE_STATE=$T/s1 b hello --version 1.0.1 --rev "$SHA" --no-push -q | awk '{print $NF}')
[ -n "$d3" ] && [ "$d3" != "$d1" ] && t_ok "another version gives another digest" || t_not_ok "another version gives another digest"
t_check "the layout we wrote validates against the OCI schemas" "$CHECK" --layout "$T/s1/images/hello"

# --- push and the printed line
out=$(b hello --version 1.0.0 --rev "$SHA" -q 2>&1)
if [[ $out =~ ^$REG/hello:1\.0\.0\ $REG/hello@(sha256:[0-9a-f]{64})$ ]]; then
    pushed=${BASH_REMATCH[1]}
    t_eq "build prints 'REG/hello:1.0.0 REG/hello@digest' and pushes the reproducible digest" "$pushed" "$d1"
else
    pushed=
    t_not_ok "build prints 'REG/hello:1.0.0 REG/hello@digest'"; t_diag "$out"
fi
b hello --version 1.0.0 --rev "$SHA" >/dev/null 2>"$T/rebuild.err"
t_check "a rebuilt image says its config and layers exist in the registry (nothing sent)" \
    grep -Eq "^substrate build: exists +layer +sha256:[0-9a-f]{64} \(" "$T/rebuild.err"
t_check "  ... and does not claim to have pushed them" bash -c "! grep -Eq 'pushed +(layer|config)' '$T/rebuild.err'"
jout=$(b job --version 1.0.0 --rev "$SHA" -q --json 2>&1)
jdigest=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])' <<<"$jout" 2>/dev/null)
[[ $jdigest == sha256:* ]] && t_ok "job builds and pushes (--json record)" || { t_not_ok "job builds and pushes (--json record)"; t_diag "$jout"; }

# --- peer readback: skopeo sees our digest; umoci unpacks a rootfs whose hello runs
sk=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/hello:1.0.0" 2>&1)
t_eq "skopeo inspect reports our digest" "$sk" "$pushed"
labels=$(skopeo inspect --tls-verify=false --config "docker://$REG/hello@$pushed" 2>&1)
grep -q "\"org.opencontainers.image.revision\": \"$SHA\"" <<<"$labels" &&
grep -q '"org.opencontainers.image.version": "1.0.0"' <<<"$labels" &&
! grep -q 'org.opencontainers.image.source' <<<"$labels" &&
grep -q '"org.opencontainers.image.created": "20' <<<"$labels" &&
    t_ok "config labels: revision, version, created; no source (none is configured: tests/integration/source.sh)" ||
    { t_not_ok "config labels: revision, version, created; no source"; t_diag "$labels"; }
jl=$(skopeo inspect --tls-verify=false --config "docker://$REG/job@$jdigest" 2>&1)
bbver=$(dpkg-query -W -f='${Version}' busybox-static)
grep -q "\"dev.substrate.host-inputs\": \"busybox-static=$bbver\"" <<<"$jl" &&
    t_ok "job records busybox-static=$bbver as a host input" || { t_not_ok "job records its host input"; t_diag "$jl"; }
grep -q '"dev.substrate.layer-compression": "gzip-6 zlib-[0-9.]*"' <<<"$jl" &&
    t_ok "the layer's compression (level and zlib version) is recorded" || { t_not_ok "the layer's compression is recorded"; t_diag "$jl"; }
if skopeo copy -q --src-tls-verify=false "docker://$REG/hello@$pushed" "oci:$T/peer:hello" >/dev/null 2>&1 &&
   umoci unpack --image "$T/peer:hello" "$T/bundle" >/dev/null 2>&1; then
    port=$(t_free_port)
    "$T/bundle/rootfs/usr/bin/hello" --listen "127.0.0.1:$port" 2>"$T/hello.log" &
    hpid=$!
    t_on_exit "kill $hpid"
    for _ in $(seq 50); do body=$(curl -sf "http://127.0.0.1:$port/" 2>/dev/null) && break; sleep 0.1; done
    kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null
    grep -q "1.0.0" <<<"$body" && grep -q "$SHA" <<<"$body" &&
        t_ok "skopeo copy + umoci unpack give a rootfs whose hello runs and names its version and revision" ||
        { t_not_ok "hello from the umoci rootfs answers"; t_diag "body: $body" "$(cat "$T/hello.log")"; }
else
    t_not_ok "skopeo copy + umoci unpack"; t_diag "$(skopeo copy --src-tls-verify=false "docker://$REG/hello@$pushed" "oci:$T/peer:hello" 2>&1)"
fi

# --- refusals: each names the problem, exits 2, changes nothing
t_fails "a semver '+' version is refused" 2 "semver" b hello --version 1.0.0+build --no-push
t_fails "an unknown commit is refused" 2 "unknown revision" b hello --version 1 --rev 0123456789abcdef0123456789abcdef01234567
t_fails "an unknown image is refused, naming the images there" 2 "unknown image \"nope\".*hello" b nope --version 1 --rev "$SHA"
t_fails "an image name with bad characters is refused" 2 "image name" b "../etc" --version 1
t_fails "--allow-dirty with --rev is refused" 2 "cannot be combined" b hello --version 1 --rev "$SHA" --allow-dirty
t_fails "a missing --version is a usage error" 2 "version" b hello

# only tracked changes make a tree dirty: an untracked file cannot change the commit's export
echo scratch > "$R/untracked.txt"
uj=$(SUBSTRATE_STATE=$T/s4 b hello --version 1 --no-push -q --json 2>&1)
grep -q "\"revision\": \"$SHA\"" <<<"$uj" && t_ok "an untracked file does not block a build of HEAD (labelled with the plain commit)" ||
    { t_not_ok "an untracked file does not block a build of HEAD"; t_diag "$uj"; }
rm -f "$R/untracked.txt"
echo "# changed" >> "$R/README.md"
t_fails "a tracked, modified file makes the tree dirty: refused when building HEAD" 2 \
    "uncommitted changes.*--allow-dirty" b hello --version 1 --no-push
dj=$(SUBSTRATE_STATE=$T/s3 b hello --version 1 --no-push --allow-dirty -q --json 2>&1)
grep -q "\"revision\": \"$SHA-dirty\"" <<<"$dj" && t_ok "--allow-dirty builds the tree as it is, labelled <sha>-dirty" ||
    { t_not_ok "--allow-dirty labels <sha>-dirty"; t_diag "$dj"; }
git -C "$R" checkout -q -- README.md

# malformed specs, committed so they are in the export
bad_spec() { # name json -> commit sha
    mkdir -p "$R/platform/images/$1"
    printf '%s\n' "$2" > "$R/platform/images/$1/image.json"
    git -C "$R" add -A && git -C "$R" -c user.name=t -c user.email=t@t commit -qm "bad spec $1"
    git -C "$R" rev-parse HEAD
}
s=$(bad_spec badkey '{"name":"badkey","files":[],"dirs":[{"path":"/x","mode":"0755"}],"colour":"red"}')
t_fails "spec: an unknown field is refused by name" 2 'unknown field "colour"' b badkey --version 1 --rev "$s" --no-push
s=$(bad_spec badmode '{"name":"badmode","dirs":[{"path":"/x","mode":"0799"}]}')
t_fails "spec: a non-octal mode is refused" 2 "not octal" b badmode --version 1 --rev "$s" --no-push
s=$(bad_spec badpath '{"name":"badpath","dirs":[{"path":"/x/../../etc","mode":"0755"}]}')
t_fails "spec: a '..' path is refused" 2 'component' b badpath --version 1 --rev "$s" --no-push
s=$(bad_spec nopkg '{"name":"nopkg","files":[{"from":"host:/bin/busybox","to":"/bin/busybox","mode":"0755"}]}')
t_fails "spec: a host file without its package is refused" 2 'needs "package"' b nopkg --version 1 --rev "$s" --no-push
s=$(bad_spec wrongpkg '{"name":"wrongpkg","files":[{"from":"host:/bin/busybox","package":"coreutils","to":"/bin/busybox","mode":"0755"}]}')
t_fails "spec: a host file owned by another package is refused" 2 'does not belong' b wrongpkg --version 1 --rev "$s" --no-push
s=$(bad_spec nodeb '{"name":"nodeb","build_packages":["gcc-12","no-such-deb-pkg"],"dirs":[{"path":"/x","mode":"0755"}]}')
t_fails "spec: a build package that is not installed is named" 3 'Debian package no-such-deb-pkg is not installed' b nodeb --version 1 --rev "$s" --no-push
s=$(bad_spec dupkey '{"name":"dupkey","name":"dupkey","dirs":[]}')
t_fails "spec: duplicate keys are refused" 2 'duplicate' b dupkey --version 1 --rev "$s" --no-push
mkdir -p "$R/platform/images/escape"
ln -sf /etc/passwd "$R/platform/images/escape/passwd"
s=$(bad_spec escape '{"name":"escape","files":[{"from":"src:platform/images/escape/passwd","to":"/p","mode":"0644"}]}')
t_fails "spec: a source symlink escaping the export is refused" 2 'outside the build tree' b escape --version 1 --rev "$s" --no-push
s=$(bad_spec failing '{"name":"failing","build":["false"],"dirs":[{"path":"/x","mode":"0755"}]}')
t_fails "a failing build command is reported" 2 'build command `false` failed' b failing --version 1 --rev "$s" --no-push
s=$(bad_spec minimal '{"name":"minimal","dirs":[{"path":"/data","mode":"0700"}]}')
t_check "a minimal spec (no build, no config) builds" b minimal --version 1 --rev "$s" --no-push -q
n=$(ls "$T/state/images" 2>/dev/null | grep -Ec 'badkey|badmode|badpath|nopkg|wrongpkg|nodeb|dupkey|escape|failing')
t_eq "refused builds left no image layouts" "$n" "0"
left=$(ls -A "$T/state/tmp" 2>/dev/null | wc -l)
t_eq "no build exports are left behind" "$left" "0"

# --- environment errors: exit 3 with a message saying what to do
dead=$(t_free_port)
t_fails "an unreachable registry is a clear environment error" 3 "not reachable|registry start" \
    env SUBSTRATE_REGISTRY=127.0.0.1:$dead "$BIN" build --repo "$R" hello --version 9 --rev "$SHA" -q
mkdir -p "$T/small"
if mount -t tmpfs -o size=512k tmpfs "$T/small" 2>/dev/null; then
    t_on_exit "umount '$T/small'"
    t_fails "a full disk under the state dir is a clear error" 3 "disk is full" \
        env SUBSTRATE_STATE="$T/small/state" "$BIN" build --repo "$R" hello --version 1 --rev "$SHA" --no-push -q
    # no index.json at all, or one that parses and has no entry "1" (an unreadable one fails)
    kept=$(/usr/bin/python3 - "$T/small/state/images/hello/index.json" <<'EOF' 2>&1
import json, os, sys
p = sys.argv[1]
if not os.path.exists(p):
    print("none")
else:
    refs = [m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in json.load(open(p))["manifests"]]
    print("kept" if "1" in refs else "none")
EOF
)
    t_eq "the full-disk build left no image entry" "$kept" "none"
else
    t_skip "a full disk under the state dir is a clear error" "cannot mount tmpfs here"
    t_skip "the full-disk build left no image entry" "cannot mount tmpfs here"
fi
t_done

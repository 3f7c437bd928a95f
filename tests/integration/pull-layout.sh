#!/usr/bin/env bash
# Pulling into a layout that already holds blobs: by default every present
# blob is hashed again (a corrupt one is fetched anew); --trust-layout takes
# them by size. And the fsyncs of a pull: each fetched blob file once, its
# directory once per pull (not once per blob). Against a real docker-registry.
. "$(dirname "$0")/../lib.sh"
t_registry
REG=$SUBSTRATE_REGISTRY

# an image of 8 layers (umoci: one repack per layer), plus its config
L=$T/L
if ! { umoci init --layout "$L" && umoci new --image "$L:t" &&
       umoci unpack --image "$L:t" "$T/bundle"; } >"$T/umoci.log" 2>&1; then
    echo "Bail out! umoci: $(cat "$T/umoci.log")"; exit 1
fi
for i in 1 2 3 4 5 6 7 8; do # `umoci insert`: one new layer each
    head -c 65536 /dev/urandom >"$T/f$i"
    umoci insert --image "$L:t" "$T/f$i" "/f$i" >>"$T/umoci.log" 2>&1 || { echo "Bail out! insert"; exit 1; }
done
t_check "push the 8-layer image" "$BIN" push -q --oci "$L:t" "$REG/fs/img:v1"
layers=$(/usr/bin/python3 -c '
import json,sys
d=sys.argv[1]; i=json.load(open(d+"/index.json"))["manifests"][0]["digest"].split(":")[1]
m=json.load(open(d+"/blobs/sha256/"+i)); print(len(m["layers"]))' "$L")
t_eq "the image has 8 layers" "$layers" 8

# ---- fsyncs: 9 blobs (8 layers + config) -> 9 file fsyncs + 1 for blobs/sha256 ----
if command -v strace >/dev/null; then
    # (LeakSanitizer cannot run under ptrace: the ASan build's leak check is off here only)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -f -qq -e trace=fsync -o "$T/strace.out" "$BIN" pull -q "$REG/fs/img:v1" --oci "$T/P1:v1" >/dev/null 2>"$T/p1.err"
    t_eq "a pull into a new layout succeeds under strace" "$?" 0
    # the fds fsynced, resolved from the trace by the paths opened just before
    n=$(grep -c 'fsync(' "$T/strace.out")
    # 9 blob files + 1 for blobs/sha256, and 8 for the layout's own files written
    # atomically, file then directory (the manifest, oci-layout, index.json twice).
    # Before the batching every blob also synced its directory: 9 more (26).
    t_eq "  ... and fsyncs each fetched blob once and their directory once (18 in all)" "$n" 18
    [ "$n" = 18 ] || t_diag "$(cat "$T/strace.out")"
else
    t_not_ok "strace is installed (scripts/install-deps)"
fi

# ---- re-pull: present blobs ----
"$BIN" pull -q "$REG/fs/img:v1" --oci "$T/P2:v1" >/dev/null 2>&1
victim=$(find "$T/P2/blobs/sha256" -type f -size 64k | head -1)
[ -n "$victim" ] || victim=$(find "$T/P2/blobs/sha256" -type f -size +60k | head -1)
good=$(sha256sum "$victim" | cut -d' ' -f1)
corrupt() { # flip one byte in the middle, same size
    chmod u+w "$1"
    /usr/bin/python3 - "$1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(bytes(b))
EOF
}
corrupt "$victim"
out=$("$BIN" pull "$REG/fs/img:v1" --oci "$T/P2:v1" 2>&1 >/dev/null)
t_eq "by default a present blob is hashed again: the corrupt one is fetched anew" \
    "$(sha256sum "$victim" | cut -d' ' -f1)" "$good"
t_eq "  ... and the progress says fetched for it, present for the 8 intact blobs" \
    "$(grep -c "fetched .*sha256:${good:0:12}" <<<"$out") $(grep -c '^ *present' <<<"$out")" "1 8"
[ "$(grep -c '^ *present' <<<"$out")" = 8 ] || t_diag "$out"

corrupt "$victim"
out=$("$BIN" pull --trust-layout "$REG/fs/img:v1" --oci "$T/P2:v1" 2>&1 >/dev/null)
t_eq "--trust-layout takes present blobs by size: all 9 present, nothing fetched" \
    "$(grep -c '^ *present' <<<"$out") $(grep -Ec 'fetched +(layer|config)' <<<"$out")" "9 0"
t_eq "  ... so the corrupt blob stays as it was (what the flag trusts)" \
    "$(sha256sum "$victim" | cut -d' ' -f1 | grep -c "$good")" 0
truncate -s 100 "$victim"
t_check "--trust-layout still fetches a present blob of the wrong size" \
    "$BIN" pull -q --trust-layout "$REG/fs/img:v1" --oci "$T/P2:v1"
t_eq "  ... and the blob is whole again" "$(sha256sum "$victim" | cut -d' ' -f1)" "$good"
t_done

# Shared helpers for integration tests (bash). Source it, then call t_* and
# finish with t_done. Output is TAP. Every test gets a private temp dir and a
# private state dir; t_cleanup (run on exit) stops what the test started, by
# pid, and removes the temp dir.
set -u
TOP=${SUBSTRATE_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BIN=${SUBSTRATE_BIN:-$TOP/build/substrate}
export SUBSTRATE_TOP=$TOP
T=$(mktemp -d /tmp/substrate-it.XXXXXX)
export SUBSTRATE_STATE=$T/state
_t_n=0
_t_failed=0
_t_cleanups=()

t_ok() { _t_n=$((_t_n+1)); echo "ok $_t_n - $*"; }
t_not_ok() { _t_n=$((_t_n+1)); _t_failed=$((_t_failed+1)); echo "not ok $_t_n - $*"; }
t_skip() { _t_n=$((_t_n+1)); echo "ok $_t_n - $1 # SKIP $2"; }
t_diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# t_check DESC CMD...: passes when CMD exits 0.
t_check() {
    local desc=$1; shift
    local out
    if out=$("$@" 2>&1); then t_ok "$desc"; else t_not_ok "$desc"; t_diag "exit $?: $*" "$out"; fi
}
# t_fails DESC CODE PATTERN CMD...: passes when CMD exits with CODE and its
# output matches the (grep -E) PATTERN.
t_fails() {
    local desc=$1 code=$2 pat=$3; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$code" ] && grep -Eq -- "$pat" <<<"$out"; then t_ok "$desc"
    else t_not_ok "$desc"; t_diag "expected exit $code matching /$pat/, got $rc: $*" "$out"; fi
}
# t_eq DESC GOT WANT
t_eq() {
    if [ "$2" = "$3" ]; then t_ok "$1"; else t_not_ok "$1"; t_diag "got:  $2" "want: $3"; fi
}

t_on_exit() { _t_cleanups+=("$*"); }
t_cleanup() {
    local i
    for ((i=${#_t_cleanups[@]}-1; i>=0; i--)); do eval "${_t_cleanups[$i]}" >/dev/null 2>&1 || true; done
    rm -rf "$T"
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# The plan; the script exits 1 when any point was "not ok".
t_done() {
    echo "1..$_t_n"
    [ "$_t_failed" = 0 ] || { echo "# $_t_failed of $_t_n failed"; exit 1; }
}

# Pids of Tier-2/Tier-0 job processes (the job uid range) of the jobs named
# PREFIX (their cgroup is substrate-job-PREFIX-*): other tests or sessions may
# run jobs of their own at the same time, and those are not this test's.
t_job_pids() {
    local p
    for p in $(ps -eo pid=,uid= | awk '$2 >= 1000000000 && $2 < 1000001024 {print $1}'); do
        grep -q "substrate-job-$1-" "/proc/$p/cgroup" 2>/dev/null && echo "$p"
    done
    return 0
}

# A free TCP port on loopback.
t_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Start a private registry for this test (stopped on exit).
t_registry() {
    local port
    port=$(t_free_port)
    export SUBSTRATE_REGISTRY=127.0.0.1:$port
    if ! "$BIN" registry start >"$T/registry-start.log" 2>&1; then
        echo "Bail out! cannot start registry: $(cat "$T/registry-start.log")"
        exit 1
    fi
    t_on_exit "'$BIN' registry stop"
}

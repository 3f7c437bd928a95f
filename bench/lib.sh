# Shared by the benchmarks: where they work and which loopback port their
# private registry uses, each settable, and the statistics they print.
#   BENCH_TMP   parent of the benchmark's work dir (default /tmp)
#   BENCH_PORT  loopback port of its private registry (default: a free one)
#   BENCH_ROUNDS  interleaved rounds (default 11: medians are stable on a
#               shared, noisy 2-core machine from about 11 on)
bench_setup() { # name -> sets W, port; exports SUBSTRATE_STATE, SUBSTRATE_REGISTRY
    local name=$1
    W=$(mktemp -d "${BENCH_TMP:-/tmp}/substrate-bench-$name.XXXXXX")
    export SUBSTRATE_STATE=$W/state
    port=${BENCH_PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    export SUBSTRATE_REGISTRY=127.0.0.1:$port
}
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

#!/usr/bin/env bash
# Where a virtual-key call's CPU goes, as a flame graph: Tollgate on GW_CPU with a virtual key
# that has a budget, rpm/tpm and parallel limits and a model list (every check runs, every call
# recorded in SQLite, as in bench/floor.sh), wrk on LOAD_CPU at CONC connections, and `perf record`
# sampling the gateway's threads (all of them: the serving thread, SQLite's workers, the spend
# writer) for DUR seconds after a warm-up. Release builds carry no frame pointers, so stacks are
# unwound from DWARF call frame information (`--call-graph dwarf`); inlined functions are folded
# into their callers. Writes OUT (an SVG, default bench/flamegraphs/vkey-c$CONC.svg) and prints
# the functions with the most samples of their own and the share of kernel time.
# Needs perf (Debian's linux-perf) and inferno (`cargo install inferno`; its binaries on PATH or
# in INFERNO_BIN). Loopback only.
#
# Usage: bench/flame.sh   (env: CONC (50), DUR (10), FREQ (997), OUT, TOP (30), GW_CPU (0),
#                          LOAD_CPU (1), BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
CONC=${CONC:-50}
DUR=${DUR:-10}
FREQ=${FREQ:-997}
TOP=${TOP:-30}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$REPO/bench/flamegraphs/vkey-c$CONC.svg}
MOCK_PORT=18121
GW_PORT=4201
MASTER=sk-bench-flame-3e5a7c9b1d3f5a7c9e1b3d5f7a9c1e3b

command -v perf >/dev/null || { echo "flame.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
PATH=${INFERNO_BIN:-$HOME/.cargo/bin}:$PATH
command -v inferno-flamegraph >/dev/null && command -v inferno-collapse-perf >/dev/null \
  || { echo "flame.sh: needs inferno (cargo install inferno), or INFERNO_BIN" >&2; exit 1; }
source "$REPO/bench/lib.sh"
bench_setup flame-run
require_free_ports $MOCK_PORT $GW_PORT
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
  --host 127.0.0.1 --port $GW_PORT) > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:$GW_PORT/health/liveliness
VKEY=$(limited_key "http://127.0.0.1:$GW_PORT" "$MASTER" flame)

export BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $VKEY"
URL=http://127.0.0.1:$GW_PORT/v1/chat/completions
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d3s -s "$SHARED/wrk/post.lua" "$URL" > /dev/null   # warm-up
echo "== flame: c=$CONC for ${DUR}s, perf at ${FREQ} Hz"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d$((DUR + 2))s -s "$SHARED/wrk/post.lua" "$URL" \
  | grep '^JSON ' | cut -c6- > "$RUN/wrk.json" &
WRK=$!
sleep 1
taskset -c "$LOAD_CPU" perf record -q -F "$FREQ" -g --call-graph dwarf,16384 -p "$TG" \
  -o "$RUN/perf.data" -- sleep "$DUR" 2> "$RUN/perf-record.log"
wait $WRK
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); e=sum(v for k,v in r.items() if k.startswith("err_")); print("wrk: %d calls in %.1f s, %d errors, %.0f req/s" % (r["requests"], r["duration_us"]/1e6, e, r["requests"]/(r["duration_us"]/1e6)))' "$RUN/wrk.json"

# System calls per call, counted (not sampled) over a second run of the same load: unlike req/s,
# these counts do not move with what else the machine is doing.
taskset -c "$LOAD_CPU" perf stat -e 'syscalls:sys_enter_*' -p "$TG" -o "$RUN/syscalls.txt" \
  -- sleep "$((DUR + 1))" 2> "$RUN/perf-stat.log" &
STAT=$!
sleep 0.5
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d"${DUR}"s -s "$SHARED/wrk/post.lua" "$URL" \
  | grep '^JSON ' | cut -c6- > "$RUN/wrk-syscalls.json"
wait $STAT
CALLS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$RUN/wrk-syscalls.json")
echo "== flame: system calls per call ($CALLS calls; counted over the load plus up to 1.5 s idle)"
awk -v n="$CALLS" '$1 ~ /^[0-9,]+$/ && $2 ~ /^syscalls:/ {gsub(",", "", $1);
  if ($1 + 0 >= n / 100) printf "%8.3f  %s\n", $1 / n, substr($2, 20)}' "$RUN/syscalls.txt" | sort -rn

taskset -c "$LOAD_CPU" perf script -i "$RUN/perf.data" 2>/dev/null > "$RUN/perf.script"
inferno-collapse-perf --kernel < "$RUN/perf.script" > "$RUN/folded.txt"
mkdir -p "$(dirname "$OUT")"
inferno-flamegraph --title "Tollgate, virtual key, c=$CONC (perf, ${DUR}s)" --width 1600 --minwidth 0.5 \
  < "$RUN/folded.txt" > "$OUT"
echo "== flame: $OUT"

# Self time per function (the leaf of each stack) and the kernel's share, from the folded stacks.
python3 - "$RUN/folded.txt" "$TOP" <<'PY'
import collections, sys
own, total, kernel = collections.Counter(), 0, 0
for line in open(sys.argv[1]):
    stack, n = line.rstrip("\n").rsplit(" ", 1)
    n = int(n)
    frames = stack.split(";")
    total += n
    leaf = frames[-1]
    own[leaf] += n
    if leaf.endswith("_[k]"):
        kernel += n
print(f"samples: {total}, in the kernel: {100 * kernel / max(total, 1):.1f} %")
print(f"{'self %':>7}  function")
for f, n in own.most_common(int(sys.argv[2])):
    print(f"{100 * n / total:7.2f}  {f[:150]}")
PY

#!/usr/bin/env bash
# Tollgate beside the floor, in one run: direct (load generator → mock), two bare Rust passthroughs
# (axum + reqwest, axum + hyper: forward the body, return the answer, nothing else; see
# passthrough/) and Tollgate with the master key, every call recorded (SQLite, as out of the box),
# once as configured by default (spend journal on) and once with TOLLGATE_SPEND_JOURNAL=off, so
# the journal's cost is measured in the same run; and Tollgate with a virtual key that has a
# budget, rpm/tpm and parallel limits and a model list (every check runs, none refuses), the
# case the performance targets are stated for. The closing lines give those targets' ratios to
# the axum + hyper passthrough.
# Same placement as bench/run.sh: the gateway under test on GW_CPU, load and mock on LOAD_CPU.
# The machine's speed moves between runs, so the ratios to the passthroughs are the figures to
# quote; absolute numbers compare only within a run.
#
# Usage: bench/floor.sh      (env: DUR (8), CONCS (1 10 50 200), GW_CPU (0), LOAD_CPU (1),
#                             BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
DUR=${DUR:-8}
CONCS=${CONCS:-"1 10 50 200"}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18097
MASTER=sk-bench-floor-6a2c9e4f1b3d5a7c8e0f2b4d6a8c1e3f

source "$REPO/bench/lib.sh"
bench_setup floor-run
PT_TARGET=$W/passthrough-target
echo "== floor: building the passthroughs"
(cd "$REPO/bench/passthrough" && CARGO_TARGET_DIR=$PT_TARGET cargo build --release -q)
require_free_ports $MOCK_PORT 4191 4192 4193 4195
start_mock $MOCK_PORT
UP=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
taskset -c "$GW_CPU" "$PT_TARGET/release/passthrough-reqwest" 127.0.0.1:4191 "$UP" > "$RUN/pt-reqwest.log" 2>&1 &
PT_REQWEST=$!; pids+=($!)
taskset -c "$GW_CPU" "$PT_TARGET/release/passthrough-hyper" 127.0.0.1:4192 "$UP" > "$RUN/pt-hyper.log" 2>&1 &
PT_HYPER=$!; pids+=($!)
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" --host 127.0.0.1 --port 4193) > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
mkdir -p "$RUN/nojournal"
(cd "$RUN/nojournal" && TOLLGATE_SPEND_JOURNAL=off exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" --host 127.0.0.1 --port 4195) > "$RUN/tollgate-nojournal.log" 2>&1 &
TG_NJ=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:4193/health/liveliness http://127.0.0.1:4195/health/liveliness
sleep 0.5
VKEY=$(limited_key http://127.0.0.1:4193 "$MASTER" floor)

export BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $MASTER"
cpu_ticks() { [ -z "$1" ] && { echo 0; return; }; awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # name pid url conc
  local c0 c1 out
  c0=$(cpu_ticks "$2")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$4" -d"${DUR}"s --timeout=10s -s "$SHARED/wrk/post.lua" "$3" | grep '^JSON ' | cut -c6-)
  c1=$(cpu_ticks "$2")
  echo "$1 $4 $((c1 - c0)) $out" >> "$RUN/raw.txt"
}
for url in http://127.0.0.1:4191/v1/chat/completions http://127.0.0.1:4192/v1/chat/completions http://127.0.0.1:4193/v1/chat/completions http://127.0.0.1:4195/v1/chat/completions; do
  taskset -c "$LOAD_CPU" wrk -t1 -c10 -d2s -s "$SHARED/wrk/post.lua" "$url" > /dev/null   # warm-up
done
for c in $CONCS; do
  echo "== floor: concurrency $c"
  measure direct "" "$UP" "$c"
  measure passthrough-reqwest "$PT_REQWEST" http://127.0.0.1:4191/v1/chat/completions "$c"
  measure passthrough-hyper "$PT_HYPER" http://127.0.0.1:4192/v1/chat/completions "$c"
  measure tollgate "$TG" http://127.0.0.1:4193/v1/chat/completions "$c"
  measure tollgate-nojournal "$TG_NJ" http://127.0.0.1:4195/v1/chat/completions "$c"
  WRK_HDR1="Authorization: Bearer $VKEY" measure tollgate-vkey "$TG" http://127.0.0.1:4193/v1/chat/completions "$c"
done
RSS_KB=$(awk '/VmHWM/{print $2}' "/proc/$TG/status")
python3 - "$RUN/raw.txt" "$RSS_KB" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, conc, ticks, js = line.split(" ", 3)
    r = json.loads(js)
    n = r["requests"]; secs = r["duration_us"] / 1e6
    errors = sum(r[k] for k in r if k.startswith("err_"))
    rows[(name, int(conc))] = dict(rps=n / secs, p50=r["p50_us"] / 1e3, p99=r["p99_us"] / 1e3,
                                   cpu_us=(int(ticks) * 10_000 / n) if n else 0, errors=errors)
order = ["direct", "passthrough-reqwest", "passthrough-hyper", "tollgate", "tollgate-nojournal", "tollgate-vkey"]
print("| target | conc | req/s | p50 ms | p99 ms | +p50 vs direct | CPU µs/req | req/s vs reqwest passthrough | req/s vs hyper passthrough | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (name, conc), v in sorted(rows.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
    d = rows.get(("direct", conc)); p = rows.get(("passthrough-reqwest", conc)); h = rows.get(("passthrough-hyper", conc))
    added = "-" if name == "direct" else f"+{v['p50'] - d['p50']:.3f}"
    ratio = "-" if name == "direct" else f"{v['rps'] / p['rps']:.2f}"
    ratio_h = "-" if name == "direct" else f"{v['rps'] / h['rps']:.2f}"
    cpu = "-" if name == "direct" else f"{v['cpu_us']:.0f}"
    print(f"| {name} | {conc} | {v['rps']:,.0f} | {v['p50']:.3f} | {v['p99']:.3f} | {added} | {cpu} | {ratio} | {ratio_h} | {v['errors']} |")
print(f"\nTollgate peak RSS over the run: {int(sys.argv[2]) / 1024:.1f} MiB (target <= 32)")
# The performance targets, with the virtual key, against the axum + hyper passthrough.
def get(name, conc):
    return rows.get((name, conc))
k50, h50 = get("tollgate-vkey", 50), get("passthrough-hyper", 50)
if k50 and h50:
    print(f"c=50 req/s, virtual key / hyper passthrough: {k50['rps'] / h50['rps']:.2f} (target >= 0.85)")
k1, h1, d1 = get("tollgate-vkey", 1), get("passthrough-hyper", 1), get("direct", 1)
if k1 and h1 and d1:
    added_k, added_h = k1["p50"] - d1["p50"], h1["p50"] - d1["p50"]
    if added_h > 0:
        print(f"c=1 added p50, virtual key / hyper passthrough: {added_k / added_h:.2f} (target <= 1.2)")
    print(f"c=1 p99, virtual key / hyper passthrough: {k1['p99'] / h1['p99']:.2f} (target <= 1.5)")
PY

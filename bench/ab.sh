#!/usr/bin/env bash
# A/B of two Tollgate binaries in one run: the same virtual-key call (budget, rpm/tpm, parallel
# limit, model list; every call recorded in SQLite) against the harness' mock, each binary on
# GW_CPU with load and mock on LOAD_CPU, measured in turns (A, B, A, B, …) so that a drift of the
# machine's speed falls on both. Prints the median of the rounds per case and B's ratio to A.
#
# Usage: TOLLGATE_A=/path/to/before TOLLGATE_B=/path/to/after bench/ab.sh
#        (env: DUR (6), ROUNDS (3), CONCS (1 50), STREAM_CONC (10), GW_CPU (0), LOAD_CPU (1),
#         BENCH_WORKDIR as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
: "${TOLLGATE_A:?set TOLLGATE_A to the binary before the change}"
: "${TOLLGATE_B:?set TOLLGATE_B to the binary after the change}"
DUR=${DUR:-6}
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"1 50"}
STREAM_CONC=${STREAM_CONC:-10}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18098
MASTER=sk-bench-ab-3f1e5d7c9b2a4f6e8d0c1b3a5f7e9d2c

source "$REPO/bench/lib.sh"
TOLLGATE_BIN=$TOLLGATE_A bench_setup ab-run
require_free_ports $MOCK_PORT 4201 4202
start_mock $MOCK_PORT

declare -A PORT=([A]=4201 [B]=4202) BIN=([A]=$TOLLGATE_A [B]=$TOLLGATE_B) PID=() KEY=()
for side in A B; do
  mkdir -p "$RUN/$side"
  write_config "$RUN/$side/config.yaml" $MOCK_PORT $MASTER
  (cd "$RUN/$side" && exec taskset -c "$GW_CPU" "${BIN[$side]}" --config "$RUN/$side/config.yaml" \
    --host 127.0.0.1 --port "${PORT[$side]}") > "$RUN/$side/tollgate.log" 2>&1 &
  PID[$side]=$!; pids+=($!)
done
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:4201/health/liveliness http://127.0.0.1:4202/health/liveliness
for side in A B; do
  KEY[$side]=$(limited_key "http://127.0.0.1:${PORT[$side]}" "$MASTER" ab)
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Spend records committed so far: a binary that answers calls faster than it records them reads
# faster than it is, its records waiting in memory, so each run also reports how many of its
# calls were not yet written when the load stopped.
written() {
  curl -sf "http://127.0.0.1:${PORT[$1]}/metrics" -H "Authorization: Bearer $MASTER" \
    | awk '/^tollgate_spend_records_written_total/ {print $2}'
}
measure() { # case side conc body
  local url="http://127.0.0.1:${PORT[$2]}/v1/chat/completions" c0 c1 w0 w1 out
  c0=$(cpu_ticks "${PID[$2]}"); w0=$(written "$2")
  out=$(BODY_FILE=$4 WRK_HDR1="Authorization: Bearer ${KEY[$2]}" taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$3" -d"${DUR}"s --timeout=10s -s "$SHARED/wrk/post.lua" "$url" | grep '^JSON ' | cut -c6-)
  c1=$(cpu_ticks "${PID[$2]}"); w1=$(written "$2")
  echo "$1 $2 $3 $((c1 - c0)) $((w1 - w0)) $out" >> "$RUN/raw.txt"
  # Let the backlog drain before the next run (at most 10 s).
  for _ in $(seq 1 100); do [ "$(written "$2")" = "$w1" ] && break; w1=$(written "$2"); sleep 0.1; done
}

for side in A B; do  # warm-up
  BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer ${KEY[$side]}" taskset -c "$LOAD_CPU" \
    wrk -t1 -c10 -d2s -s "$SHARED/wrk/post.lua" "http://127.0.0.1:${PORT[$side]}/v1/chat/completions" > /dev/null
done
for r in $(seq 1 "$ROUNDS"); do
  echo "== ab: round $r of $ROUNDS"
  # A first in odd rounds, B first in even ones.
  order="A B"; [ $((r % 2)) = 0 ] && order="B A"
  for c in $CONCS; do
    for side in $order; do measure chat "$side" "$c" "$SHARED/bodies/chat.json"; done
  done
  for side in $order; do measure stream "$side" "$STREAM_CONC" "$SHARED/bodies/chat_stream.json"; done
done

python3 - "$RUN/raw.txt" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    case, side, conc, ticks, written, js = line.split(" ", 5)
    r = json.loads(js)
    n = r["requests"]; secs = r["duration_us"] / 1e6
    errors = sum(r[k] for k in r if k.startswith("err_"))
    runs.setdefault((case, int(conc), side), []).append(dict(
        rps=n / secs, p50=r["p50_us"] / 1e3, p99=r["p99_us"] / 1e3,
        cpu=(int(ticks) * 10_000 / n) if n else 0, errors=errors,
        unwritten=max(0, n - int(written))))
med = lambda rs, k: statistics.median(x[k] for x in rs)
print("| case | conc | A req/s | B req/s | B/A req/s | A p50 ms | B p50 ms | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req | B/A CPU | A / B most unwritten at stop | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for case, conc in sorted({(c, n) for c, n, _ in runs}, key=lambda k: (k[0], k[1])):
    a, b = runs[(case, conc, "A")], runs[(case, conc, "B")]
    errs = sum(x["errors"] for x in a + b)
    print(f"| {case} | {conc} | {med(a,'rps'):,.0f} | {med(b,'rps'):,.0f} | {med(b,'rps') / med(a,'rps'):.3f} "
          f"| {med(a,'p50'):.3f} | {med(b,'p50'):.3f} | {med(a,'p99'):.3f} | {med(b,'p99'):.3f} "
          f"| {med(a,'cpu'):.0f} | {med(b,'cpu'):.0f} | {med(b,'cpu') / med(a,'cpu'):.3f} "
          f"| {max(x['unwritten'] for x in a):,} / {max(x['unwritten'] for x in b):,} | {errs} |")
print(f"\nmedian of {len(next(iter(runs.values())))} rounds per case; A and B measured in turns")
PY

#!/usr/bin/env bash
# Streaming beside the floor, in one run: CONC (10) connections each streaming 50-chunk chat
# answers in a loop, straight to the mock (direct), through the axum + hyper passthrough (which
# passes SSE frames through as they come) and through Tollgate with a virtual key that has a
# budget, rpm/tpm and parallel limits and a model list, every stream recorded. The client is
# bench/passthrough's stream-client (Rust, hyper): it timestamps the first body byte of each
# answer, so the added time to first byte is not the client's own jitter. Chunk throughput is
# measured at CONC, the added time to first byte at one connection (at CONC it is mostly the
# load core's queueing, shared by the client and the mock). Targets are measured in turns,
# ROUNDS times; the medians give the performance issue's streaming ratios.
# Same placement as bench/floor.sh: gateways on GW_CPU, client and mock on LOAD_CPU.
#
# Usage: bench/stream_floor.sh   (env: DUR (6), CONC (10), CHUNKS (50), ROUNDS (3), GW_CPU (0),
#                                 LOAD_CPU (1), BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for
#                                 bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
DUR=${DUR:-6}
CONC=${CONC:-10}
CHUNKS=${CHUNKS:-50}
ROUNDS=${ROUNDS:-3}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18095
MASTER=sk-bench-sfloor-3b5d7f9a1c2e4a6c8e0a2c4e6a8c0e2a

source "$REPO/bench/lib.sh"
bench_setup stream-floor-run
PT_TARGET=$W/passthrough-target
echo "== stream floor: building the passthrough and the stream client"
(cd "$REPO/bench/passthrough" && CARGO_TARGET_DIR=$PT_TARGET cargo build --release -q)
require_free_ports $MOCK_PORT 4292 4293
MOCK_CHUNKS=$CHUNKS start_mock $MOCK_PORT
UP=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
taskset -c "$GW_CPU" "$PT_TARGET/release/passthrough-hyper" 127.0.0.1:4292 "$UP" > "$RUN/pt-hyper.log" 2>&1 &
pids+=($!)
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" --host 127.0.0.1 --port 4293) > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:4293/health/liveliness
sleep 0.5
VKEY=$(limited_key http://127.0.0.1:4293 "$MASTER" stream-floor)
BODY=$SHARED/bodies/chat_stream.json
CLIENT=$PT_TARGET/release/stream-client
run_client() { # name conc url [authorization]
  local out
  out=$(taskset -c "$LOAD_CPU" "$CLIENT" "$3" "$2" "$DUR" "$BODY" ${4:+"$4"})
  echo "$1 $2 $out" >> "$RUN/raw.txt"
}
for url in "$UP" http://127.0.0.1:4292/v1/chat/completions; do
  taskset -c "$LOAD_CPU" "$CLIENT" "$url" "$CONC" 2 "$BODY" > /dev/null   # warm-up
done
taskset -c "$LOAD_CPU" "$CLIENT" http://127.0.0.1:4293/v1/chat/completions "$CONC" 2 "$BODY" "Bearer $VKEY" > /dev/null
for r in $(seq 1 "$ROUNDS"); do
  echo "== stream floor: round $r of $ROUNDS"
  for c in 1 "$CONC"; do
    run_client direct "$c" "$UP"
    run_client passthrough-hyper "$c" http://127.0.0.1:4292/v1/chat/completions
    run_client tollgate-vkey "$c" http://127.0.0.1:4293/v1/chat/completions "Bearer $VKEY"
  done
done
RSS_KB=$(awk '/VmHWM/{print $2}' "/proc/$TG/status")
python3 - "$RUN/raw.txt" "$RSS_KB" "$CHUNKS" "$CONC" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, conc, js = line.split(" ", 2)
    rows.setdefault((name, int(conc)), []).append(json.loads(js))
conc = int(sys.argv[4])
med = lambda name, c, k: statistics.median(r[k] for r in rows[(name, c)])
print("| target | conc | streams/s | events/s | TTFB p50 µs | TTFB p99 µs | stream p50 µs | stream p99 µs | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in sorted({c for _, c in rows}):
    for name in ["direct", "passthrough-hyper", "tollgate-vkey"]:
        rs = rows[(name, c)]
        sps = statistics.median(r["streams"] / r["secs"] for r in rs)
        print(f"| {name} | {c} | {sps:,.0f} | {med(name, c, 'events_per_s'):,.0f} | {med(name, c, 'ttfb_p50_us'):.0f} | "
              f"{med(name, c, 'ttfb_p99_us'):.0f} | {med(name, c, 'stream_p50_us'):.0f} | {med(name, c, 'stream_p99_us'):.0f} | "
              f"{sum(r['errors'] for r in rs)} |")
print(f"\n(medians of {len(rows[('direct', 1)])} rounds; answers of {sys.argv[3]} content chunks)")
print(f"Tollgate peak RSS over the run: {int(sys.argv[2]) / 1024:.1f} MiB (target <= 32)")
ev = med("tollgate-vkey", conc, "events_per_s") / med("passthrough-hyper", conc, "events_per_s")
print(f"c={conc} chunk throughput, virtual key / hyper passthrough: {ev:.2f} (target >= 0.9)")
d = med("direct", 1, "ttfb_p50_us")
print(f"c=1 added TTFB p50: Tollgate {(med('tollgate-vkey', 1, 'ttfb_p50_us') - d) / 1000:.3f} ms (target <= 0.1), "
      f"hyper passthrough {(med('passthrough-hyper', 1, 'ttfb_p50_us') - d) / 1000:.3f} ms")
PY

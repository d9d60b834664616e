#!/usr/bin/env bash
# H2, many concurrent streams: STREAMS (2000) SSE chat streams of about STREAM_SECS (60) each, all
# open at once (their starts spread over RAMP seconds), through Tollgate and, in the same run,
# straight to the mock (the baseline for time to first byte). The mock is paced: one event a
# second. Reports time to the response headers and to the first event, events delivered, the
# longest stall inside a stream, failures, Tollgate's memory, open files and threads while the
# streams are open, memory per open stream, and whether every stream has exactly one spend row.
# Same placement as bench/run.sh: Tollgate on GW_CPU, mock, client and sampler on LOAD_CPU.
# Loopback only; about 2 × (STREAM_SECS + RAMP) + 15 s. The database is deleted at the end.
#
# Usage: bench/streams.sh     (env: STREAMS (2000), STREAM_SECS (60), RAMP (5), DIRECT (1: also
#                              measure straight to the mock), GW_CPU (0), LOAD_CPU (1),
#                              BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
STREAMS=${STREAMS:-2000}
STREAM_SECS=${STREAM_SECS:-60}
RAMP=${RAMP:-5}
DIRECT=${DIRECT:-1}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18099
GW_PORT=4196
MASTER=sk-bench-streams-7d1f3b5a9c2e4d6f8a0b1c3e5f7a9b2d
[ "$STREAM_SECS" -ge 3 ] || { echo "STREAM_SECS must be at least 3" >&2; exit 1; }

source "$REPO/bench/lib.sh"
bench_setup streams-run
PY=$W/.venv-tools/bin/python
require_free_ports $MOCK_PORT $GW_PORT
# Each stream holds a client and an upstream connection in Tollgate, and a socket in the client
# and in the mock: raise the open-files limit so neither Tollgate's default connection cap
# ((limit - 128) / 2) nor the descriptors run short.
raise_open_files $(( 2 * STREAMS + 1024 ))
echo "== streams: open-files limit $(ulimit -Sn); $STREAMS streams of ${STREAM_SECS}s, ramp ${RAMP}s"

# The mock sleeps 1 s before each event: STREAM_SECS - 2 content events plus the role and stop
# events, then [DONE].
export MOCK_CHUNKS=$(( STREAM_SECS - 2 )) MOCK_CHUNK_DELAY_MS=1000
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
  --host 127.0.0.1 --port $GW_PORT --database-url "sqlite:$RUN/streams.db") > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:$GW_PORT/health/readiness
CAP=$(connection_cap "$RUN/tollgate.log")
echo "== streams: Tollgate's connection cap ${CAP:-?}"
# Warm-up with plain (unpaced) chat calls, then the idle baseline.
BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $MASTER" taskset -c "$LOAD_CPU" \
  wrk -t1 -c10 -d2s -s "$SHARED/wrk/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" > /dev/null
sleep 2
IDLE_RSS=$(rss_kb $TG); IDLE_FDS=$(open_files $TG)

client() { # name url auth
  taskset -c "$LOAD_CPU" "$PY" "$REPO/bench/tools/streams.py" --name "$1" --url "$2" \
    --header "Authorization: Bearer $3" --body "$SHARED/bodies/chat_stream.json" \
    --streams "$STREAMS" --ramp "$RAMP" --timeout $(( STREAM_SECS * 2 + 60 )) --out "$RUN/$1.json"
}
if [ "$DIRECT" = 1 ]; then
  echo "== streams: straight to the mock"
  client direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" sk-mock
fi
echo "== streams: through Tollgate"
start_sampler $TG "$RUN/samples.txt" 1
T0=$(now_ms)
client tollgate "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$MASTER"
T1=$(now_ms)
sleep 3
AFTER_RSS=$(rss_kb $TG); AFTER_FDS=$(open_files $TG)
PEAK_RSS=$(awk '/^VmHWM/{print $2}' "/proc/$TG/status")
kill -TERM $TG; wait $TG 2>/dev/null || true
COUNTS=$(python3 -c "import sqlite3,sys; print('|'.join(str(x or 0) for x in sqlite3.connect(sys.argv[1]).execute('SELECT count(*), sum(stream = 1 AND http_status = 200), count(DISTINCT request_id) FROM spend_logs').fetchone()))" "$RUN/streams.db")
rm -rf "$RUN"/streams.db*

python3 - "$RUN" "$STREAMS" "$IDLE_RSS" "$IDLE_FDS" "$AFTER_RSS" "$AFTER_FDS" "$PEAK_RSS" "$COUNTS" "$T0" "$T1" "${CAP:-?}" <<'PY'
import json, os, sys
run, streams = sys.argv[1], int(sys.argv[2])
idle_rss, idle_fds, after_rss, after_fds, peak_rss = (int(x) for x in sys.argv[3:8])
rows, rows_stream_200, distinct = (int(x) for x in sys.argv[8].split("|"))
t0, t1, cap = int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
res = {n: json.load(open(f"{run}/{n}.json")) for n in ("direct", "tollgate") if os.path.exists(f"{run}/{n}.json")}
samples = [l.split() for l in open(f"{run}/samples.txt") if len(l.split()) == 4]
hold = [s for s in samples if t0 <= int(s[0]) <= t1]
peak_fds = max(int(s[2]) for s in hold); peak_threads = max(int(s[3]) for s in hold)
hold_rss = max(int(s[1]) for s in hold)
print(f"\n| target | streams | completed | failed | peak open | headers p50 / p99 ms | first event p50 / p99 / max ms | "
      f"events (per stream) | longest stall p99 / max ms | stream time p50 / max s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n, r in res.items():
    print(f"| {n} | {r['streams']} | {r['completed']} | {r['failed']} | {r['peak_open']} | {r['headers_p50_ms']} / {r['headers_p99_ms']} | "
          f"{r['ttfb_p50_ms']} / {r['ttfb_p99_ms']} / {r['ttfb_max_ms']} | {r['events']:,} ({r['events_per_stream_min']}-{r['events_per_stream_max']}) | "
          f"{r['max_gap_p99_ms']} / {r['max_gap_max_ms']} | {r['total_p50_s']} / {r['total_max_s']} |")
    if r["failed"]:
        print(f"|  | statuses {r['statuses']} errors {r['errors']} |")
t = res["tollgate"]
if "direct" in res:
    d = res["direct"]
    print(f"\nfirst-event overhead vs direct: p50 {t['ttfb_p50_ms'] - d['ttfb_p50_ms']:+.2f} ms, "
          f"p99 {t['ttfb_p99_ms'] - d['ttfb_p99_ms']:+.2f} ms (both include the mock's 1 s before the first event)")
print(f"event throughput through Tollgate: {t['events'] / t['wall_s']:,.0f} events/s over {t['wall_s']} s")
print(f"\nTollgate (connection cap {cap}): idle before {idle_rss / 1024:.1f} MB and {idle_fds} open files; "
      f"with the streams open: RSS up to {hold_rss / 1024:.1f} MB, {peak_fds} open files, {peak_threads} threads; "
      f"peak RSS of the process {peak_rss / 1024:.1f} MB")
print(f"memory per open stream: {(hold_rss - idle_rss) / t['peak_open']:.1f} KiB (RSS with them open - idle, / peak open)")
print(f"3 s after the streams: RSS {after_rss / 1024:.1f} MB, {after_fds} open files")
ok = rows_stream_200 == t["completed"] and distinct == rows
print(f"spend rows: {rows_stream_200} streamed calls with 200 for {t['completed']} completed streams "
      f"({rows} rows in all with the warm-up's plain calls, {distinct} distinct request ids): "
      + ("every stream recorded, once" if ok else "MISMATCH"))
PY

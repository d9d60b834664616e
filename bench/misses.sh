#!/usr/bin/env bash
# Every call a key-cache miss: KEYS (100,000) seeded virtual keys (as bench/keys.sh seeds them:
# USERS owners, every fourth a team key, an rpm limit on each) used in rotation by wrk at CONC
# for DUR seconds, each call from a new end user, from a fresh start. A key is met again only
# after all the others, so it is always read from the store (and each call's spend row has a
# new key and end user). Prints req/s, p50/p99, the share of its core Tollgate used, and each
# thread's CPU seconds. PERF=1 records Tollgate (perf, DWARF stacks, 8 s) into the run folder.
# Same placement as bench/run.sh: Tollgate on GW_CPU, mock and load on LOAD_CPU. Loopback only;
# about a minute (seeding takes most of it).
#
# Usage: bench/misses.sh   (env: KEYS (100000), USERS (1000), CONC (50), DUR (30), PERF,
#                           GW_CPU (0), LOAD_CPU (1), BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
KEYS=${KEYS:-100000}
USERS=${USERS:-1000}
CONC=${CONC:-50}
DUR=${DUR:-30}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18101
GW_PORT=4198
MASTER=sk-bench-keys-9a1c3e5b7d9f2a4c6e8b0d1f3a5c7e9b

source "$REPO/bench/lib.sh"
bench_setup misses-run
require_free_ports $MOCK_PORT $GW_PORT
DB=$RUN/keys.db
seed_keys "$DB" "$KEYS" "$USERS" 1000000000
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
  --host 127.0.0.1 --port $GW_PORT --database-url "sqlite:$DB") > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:$GW_PORT/health/readiness

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
END_USER_PREFIX=eu-miss- KEY_FROM=0 KEY_COUNT=$KEYS KEY_ONCE=0 DONE_FILE=$RUN/done \
  BODY_FILE=$SHARED/bodies/chat.json taskset -c "$LOAD_CPU" \
  wrk -t1 -c"$CONC" -d"$DUR"s --timeout=10s -s "$REPO/bench/wrk/load.lua" \
  "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$RUN/wrk.out" &
W=$!
sleep 2
c0=$(cpu_ticks $TG); t0=$(now_ms)
if [ -n "${PERF:-}" ]; then
  taskset -c "$LOAD_CPU" perf record -q -F 997 -g --call-graph dwarf,16384 -p $TG \
    -o "$RUN/perf.data" -- sleep 8 2>/dev/null
fi
wait $W || true
c1=$(cpu_ticks $TG); t1=$(now_ms)
grep '^JSON ' "$RUN/wrk.out" | cut -c6- | python3 -c "
import json, sys
r = json.load(sys.stdin)
errs = r['err_connect'] + r['err_read'] + r['err_write'] + r['err_timeout']
print(f\"misses: {r['requests'] / (r['duration_us'] / 1e6):,.0f} req/s, p50 {r['p50_us'] / 1e3:.2f} ms, \"
      f\"p99 {r['p99_us'] / 1e3:.2f} ms, non-200 {r['requests'] - r['s200']}, errors {errs}\")"
echo "Tollgate's share of its core (from 2 s in to the end): $(( (c1 - c0) * 1000 / (t1 - t0) ))%"
echo "CPU seconds by thread:"
for t in /proc/$TG/task/*; do
  printf '  %-16s %s\n' "$(cat "$t/comm")" "$(awk '{printf "%.2f", ($14 + $15) / 100}' "$t/stat")"
done | sort -k2 -rn | head -5
kill -TERM $TG; wait $TG 2>/dev/null || true
[ -n "${PERF:-}" ] || rm -rf "$DB" "$DB"-*

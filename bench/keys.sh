#!/usr/bin/env bash
# H7, many keys: KEYS (100,000) + OVER (50,000) distinct virtual keys, each used at least once,
# every call from a distinct end user ("user" in the body).
#   1. Seeds the keys straight into a fresh SQLite database (`tollgate seed-spend --rows 0`: keys
#      `sk-seed-key-<n, six digits>`, stored as their SHA-256, owned by USERS users, every fourth a
#      team key), then sets rpm_limit = KEY_RPM on each (sqlite3, before Tollgate starts) so every
#      call also goes through the rate limiter (KEY_RPM=none: no limit).
#   2. Uses keys 0 … KEYS-1 once each (wrk at CONC, rotating the Authorization header), in four
#      quarters, reading Tollgate's RSS after each (idle, once /metrics shows no spend record
#      waiting): the slope over the last
#      three quarters is the memory each idle cached key costs (cache entry, rate counters; these
#      keys have no budget, so no budget account of their own), without the fixed costs the first
#      quarter pays (database page cache, buffers).
#   3. Uses the OVER further keys once each: the key cache holds the keys used in the last 30 s
#      (at most 100,000; crates/proxy/src/keys.rs) and idle budget accounts are dropped, so RSS
#      should not grow by OVER × the per-key cost. After each phase the cache's and the budget
#      accounts' sizes are read from /metrics.
#   4. Throughput for DUR seconds each: one key; 1,000 keys in rotation (all cached); all KEYS
#      in rotation (a cached entry lives 30 s, so a key met again later is read again).
#   5. Stops Tollgate and checks the spend rows: every key and end user is there, all 200; then
#      deletes the database (about 100 MB).
# Same placement as bench/run.sh: Tollgate on GW_CPU, mock and load on LOAD_CPU. Loopback only;
# about 2-4 minutes (seeding 150,000 keys takes about 45 s of it).
#
# Usage: bench/keys.sh   (env: KEYS (100000), OVER (50000), USERS (1000), KEY_RPM (1000000000),
#                         CONC (50), DUR (10), GW_CPU (0), LOAD_CPU (1), BENCH_WORKDIR,
#                         TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh; SEED_BIN: the binary that
#                         seeds (default TOLLGATE_BIN))
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
KEYS=${KEYS:-100000}
OVER=${OVER:-50000}
USERS=${USERS:-1000}
KEY_RPM=${KEY_RPM:-1000000000}
CONC=${CONC:-50}
DUR=${DUR:-10}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18101
GW_PORT=4198
MASTER=sk-bench-keys-9a1c3e5b7d9f2a4c6e8b0d1f3a5c7e9b
[ $(( KEYS % 4 )) -eq 0 ] && [ "$KEYS" -ge 4000 ] || { echo "KEYS must be a multiple of 4, at least 4000" >&2; exit 1; }

source "$REPO/bench/lib.sh"
bench_setup keys-run
SEED_BIN=${SEED_BIN:-$TOLLGATE_BIN}
require_free_ports $MOCK_PORT $GW_PORT
DB=$RUN/keys.db
TOTAL=$(( KEYS + OVER ))

echo "== keys $(date -Is): seeding $TOTAL keys for $USERS users (rpm limit $KEY_RPM)"
s0=$(now_ms)
seed_keys "$DB" "$TOTAL" "$USERS" "$KEY_RPM"
SEED_MS=$(( $(now_ms) - s0 ))

start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
  --host 127.0.0.1 --port $GW_PORT --database-url "sqlite:$DB") > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:$GW_PORT/health/readiness

export BODY_FILE=$SHARED/bodies/chat.json
URL=http://127.0.0.1:$GW_PORT/v1/chat/completions
# load OUT SECONDS FROM COUNT ONCE [END_USER_PREFIX]: wrk over keys FROM … FROM+COUNT-1.
# With ONCE=1 the script creates $RUN/done when every key was sent, and wrk is stopped (SIGINT:
# it then prints its results) at once instead of at the end of SECONDS.
load() {
  rm -f "$RUN/done"
  END_USER_PREFIX=$6 KEY_FROM=$3 KEY_COUNT=$4 KEY_ONCE=$5 DONE_FILE=$RUN/done taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONC" -d"$2"s --timeout=10s -s "$REPO/bench/wrk/load.lua" "$URL" > "$RUN/wrk.out" &
  local w=$!
  while kill -0 $w 2>/dev/null; do
    # Every key was sent: wrk's thread has stopped (wrk.thread:stop), its calls in flight (at
    # most CONC) unread but their connections open; 1 s more lets them finish on Tollgate's side
    # before wrk exits and closes them.
    if [ -e "$RUN/done" ]; then sleep 1; kill -INT $w 2>/dev/null || true; break; fi
    sleep 0.05
  done
  wait $w || true
  grep '^JSON ' "$RUN/wrk.out" | cut -c6- > "$1"
}
# gauge NAME: a value from Tollgate's /metrics (0 when absent).
gauge() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v n="$1" '$1 == n {print $2; f=1} END {if (!f) print 0}'; }
settle() {
  # Until the spend writer's backlog is written (at most 60 s; a binary without the gauge reads
  # 0): records still waiting would be counted as the keys' memory.
  local i
  for i in $(seq 600); do
    [ "$(gauge tollgate_spend_records_pending)" = 0 ] && break
    sleep 0.1
  done
  sleep 4
  echo "$1 $(rss_kb $TG) $(open_files $TG) $(gauge tollgate_key_cache_entries) $(gauge tollgate_budget_accounts)" >> "$RUN/marks.txt"
}
# Warm-up: one key (it is also the first of the quarters), then the idle baseline.
load "$RUN/warmup.json" 3 0 1 0 eu-warm-
settle idle
Q=$(( KEYS / 4 ))
for q in 1 2 3 4; do
  echo "== keys: quarter $q (keys $(( (q - 1) * Q )) … $(( q * Q - 1 )), each once)"
  load "$RUN/q$q.json" 300 $(( (q - 1) * Q )) $Q 1 "eu-q$q-"
  settle "q$q"
done
echo "== keys: $OVER keys beyond the first $KEYS"
load "$RUN/over.json" 300 "$KEYS" "$OVER" 1 eu-over-
settle over
echo "== keys: throughput, ${DUR}s each"
# A pause before each (the spend writer drains what the previous phase left).
load "$RUN/one.json" "$DUR" 0 1 0 eu-one-
settle one
load "$RUN/hot.json" "$DUR" 0 1000 0 eu-hot-
settle hot
load "$RUN/all.json" "$DUR" 0 "$KEYS" 0 eu-all-
settle end
PEAK=$(awk '/^VmHWM/{print $2}' "/proc/$TG/status")
kill -TERM $TG; wait $TG 2>/dev/null || true
COUNTS=$(python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print("|".join(str(x or 0) for x in c.execute(
    "SELECT count(*), sum(http_status = 200), count(DISTINCT api_key), count(DISTINCT end_user), "
    "count(DISTINCT request_id) FROM spend_logs").fetchone())
    + "|" + ",".join(f"{s}:{n}" for s, n in c.execute(
    "SELECT http_status, count(*) FROM spend_logs WHERE http_status <> 200 GROUP BY 1")))
PY
)
# Which keys (if any) have no spend row: their place in the run tells why.
MISSING=$(python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(" ".join(a for (a,) in c.execute(
    "SELECT key_alias FROM verification_tokens WHERE token NOT IN (SELECT DISTINCT api_key FROM spend_logs) "
    "ORDER BY key_alias LIMIT 20")))
PY
)
echo "keys without a spend row (first 20 by alias): ${MISSING:-none}"
rm -rf "$DB" "$DB"-* "$DB".*

python3 - "$RUN" "$KEYS" "$OVER" "$CONC" "$SEED_MS" "$PEAK" "$COUNTS" "$KEY_RPM" <<'PY'
import json, sys
run, keys, over, conc, seed_ms, peak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows, rows_200, dkeys, dusers, dreq = (int(x) for x in sys.argv[7].split("|")[:5])
other_statuses = sys.argv[7].split("|")[5] or "none"
marks = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(f"{run}/marks.txt")}
w = lambda n: json.loads(open(f"{run}/{n}.json").read())
print(f"\nseeded {keys + over:,} keys in {seed_ms / 1000:.1f} s ({(keys + over) / (seed_ms / 1000):,.0f} keys/s); rpm limit on each key: {sys.argv[8]}")
print("\n| phase | keys used | calls | req/s | p50 ms | p99 ms | non-200 | errors | RSS after (idle) MB | open files | cached keys | budget accounts |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
q = keys // 4
phases = [("warm-up, one key", "warmup", "idle", 1)] + [(f"keys {(i - 1) * q:,}-{i * q - 1:,} once each", f"q{i}", f"q{i}", q) for i in (1, 2, 3, 4)] \
    + [(f"keys {keys:,}-{keys + over - 1:,} once each (past the cache cap)", "over", "over", over)]
counted = 0; flight = 0
for label, f, m, n in phases:
    r = w(f); counted += r["s200"]; flight += conc
    secs = r["duration_us"] / 1e6
    errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
    print(f"| {label} | {n:,} | {r['requests']:,} | {r['requests'] / secs:,.0f} | {r['p50_us'] / 1e3:.2f} | {r['p99_us'] / 1e3:.2f} | "
          f"{r['requests'] - r['s200']} | {errs} | {marks[m][0] / 1024:.1f} | {marks[m][1]} | {marks[m][2]:,} | {marks[m][3]:,} |")
base = None
for label, f, n in (("one key", "one", 1), ("1,000 keys in rotation (cached)", "hot", 1000), (f"{keys:,} keys in rotation", "all", keys)):
    r = w(f); counted += r["s200"]; flight += conc
    secs = r["duration_us"] / 1e6; rps = r["requests"] / secs; base = base or rps
    errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
    print(f"| {label}: {rps / base:.2f}× one key | {n:,} | {r['requests']:,} | {rps:,.0f} | {r['p50_us'] / 1e3:.2f} | {r['p99_us'] / 1e3:.2f} | "
          f"{r['requests'] - r['s200']} | {errs} | {marks['end'][0] / 1024:.1f} (end) | {marks['end'][1]} | {marks['end'][2]:,} | {marks['end'][3]:,} |")
slope = (marks["q4"][0] - marks["q1"][0]) * 1024 / (3 * q)
naive = (marks["q4"][0] - marks["idle"][0]) * 1024 / keys
print(f"\nRSS per idle cached key: {slope:,.0f} bytes (slope over keys {q:,}-{keys - 1:,}); "
      f"{naive:,.0f} bytes counting the first quarter's fixed costs (RSS {marks['idle'][0] / 1024:.1f} → {marks['q4'][0] / 1024:.1f} MB)")
grow = (marks["over"][0] - marks["q4"][0]) * 1024
print(f"{over:,} keys past the first {keys:,}: RSS {grow / 1024 / 1024:+.1f} MB ({grow / over:,.0f} bytes per key; "
      f"{slope * over / 1024 / 1024:.1f} MB if the cache kept growing); process peak RSS {peak / 1024:.1f} MB")
# wrk is stopped with calls in flight (at most CONC per phase): they are recorded too, with 200
# or, cut by the stop, another status.
ok = dreq == rows and dkeys >= keys + over and counted <= rows_200 <= rows <= counted + flight
print(f"spend rows: {rows:,} ({rows_200:,} with 200; other statuses {other_statuses}: calls cut when wrk was stopped) "
      f"for {counted:,} counted 200 answers (+ at most {flight} in flight); {dreq:,} distinct request ids; "
      f"{dkeys:,} distinct keys, {dusers:,} distinct end users: "
      + ("every key used and every call recorded once" if ok else "CHECK"))
PY

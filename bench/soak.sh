#!/usr/bin/env bash
# Soak: Tollgate under closed-loop load for a bounded time, on loopback only, reporting its
# memory, open files and threads over time and whether every call answered 200 has exactly one
# spend row at the end.
#
#   bench/soak.sh                        # outage cycles: c=50 while a private PostgreSQL is
#                                        # stopped and started CYCLES times (10 × (10 s up, 5 s down))
#   CYCLES=0 DB=sqlite DUR=1800 bench/soak.sh   # a steady 30-minute soak on SQLite
#   KEY=virtual …                        # calls through a virtual key with a budget, rpm/tpm and
#                                        # parallel limits and a model list (lib.sh's limited_key),
#                                        # then checks that the key's spend equals its rows' sum
#
# Env: KEY (master or virtual; master), DB (postgres when CYCLES > 0, else sqlite), CYCLES (10),
# UP (10 s), DOWN (5 s), DUR (seconds of load when CYCLES=0; 300), CONC (50), SAMPLE (seconds
# between samples; 5), GW_CPU (0), LOAD_CPU (1), BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for
# bench/run.sh.
# The PostgreSQL for the outage cycles is a throwaway cluster this script creates (initdb, port
# 55433, in /tmp) and removes: the machine's own PostgreSQL is never stopped.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
CYCLES=${CYCLES:-10}
UP=${UP:-10}
DOWN=${DOWN:-5}
DUR=${DUR:-300}
CONC=${CONC:-50}
SAMPLE=${SAMPLE:-5}
KEY=${KEY:-master}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
if [ "$CYCLES" -gt 0 ]; then DB=${DB:-postgres}; else DB=${DB:-sqlite}; fi
[ "$CYCLES" -eq 0 ] || [ "$DB" = postgres ] || { echo "outage cycles need DB=postgres" >&2; exit 1; }
MOCK_PORT=18098
GW_PORT=4194
PG_PORT=55433
MASTER=sk-bench-soak-3b5d7f9a1c2e4a6b8d0f1e3a5c7b9d2f

source "$REPO/bench/lib.sh"
bench_setup soak-run
require_free_ports $MOCK_PORT $GW_PORT $PG_PORT

PG_BIN=""
PGDIR=""
stop_pg() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
start_pg() {
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDIR/data" -w -l "$PGDIR/pg.log" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PGDIR" start >/dev/null
}
soak_cleanup() {
  bench_cleanup
  if [ -n "$PGDIR" ]; then stop_pg; rm -rf "$PGDIR"; fi
}
trap soak_cleanup EXIT

if [ "$DB" = postgres ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  PGDIR=$(mktemp -d /tmp/tollgate-soak-pg.XXXXXX)
  chown postgres "$PGDIR"
  runuser -u postgres -- "$PG_BIN/initdb" -A trust -U postgres -D "$PGDIR/data" >/dev/null
  start_pg
  DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
else
  DB_URL="sqlite:$RUN/soak.db"
fi

start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
  --host 127.0.0.1 --port $GW_PORT --database-url "$DB_URL") > "$RUN/tollgate.log" 2>&1 &
TG=$!; pids+=($!)
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:$GW_PORT/health/readiness
CALLER=$MASTER
[ "$KEY" = virtual ] && CALLER=$(limited_key "http://127.0.0.1:$GW_PORT" "$MASTER" soak)

total=$DUR
[ "$CYCLES" -gt 0 ] && total=$(( CYCLES * (UP + DOWN) + UP ))
echo "== soak: $DB, $KEY key, c=$CONC for ${total}s, $CYCLES outage cycles (${UP}s up, ${DOWN}s down)"
export BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $CALLER"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d"${total}s" --timeout=10s -s "$SHARED/wrk/post.lua" \
  "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$RUN/wrk.txt" 2>&1 &
WRK=$!; pids+=($!)

t0=$(date +%s)
sample() { # label
  local rss anon file fds threads
  # RSS, and the part of it that is anonymous memory (the heap) vs mapped files (the binary,
  # SQLite's shared WAL index), so growth can be told apart.
  read -r rss anon file threads < <(awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2}
    /^Threads/{t=$2} END{print r, a, f, t}' "/proc/$TG/status")
  fds=$(ls "/proc/$TG/fd" | wc -l)
  echo "$(( $(date +%s) - t0 )) $1 $rss $fds $threads $anon $file" >> "$RUN/samples.txt"
}
: > "$RUN/samples.txt"
( while kill -0 "$WRK" 2>/dev/null; do sample load; sleep "$SAMPLE"; done ) &
pids+=($!)
for i in $(seq 1 "$CYCLES"); do
  sleep "$UP"
  stop_pg; sample "db-down-$i"
  sleep "$DOWN"
  start_pg; sample "db-up-$i"
done
wait "$WRK" || true
sleep 3; sample after-load
# Idle memory after the load (what a quiet gateway keeps).
sleep 10; sample idle
kill -TERM "$TG"; wait "$TG" 2>/dev/null || true

# The virtual key's spend as the gateway kept it, and the sum of its rows (no key: both empty).
KEY_SQL="SELECT (SELECT spend_nanos FROM verification_tokens WHERE key_alias = 'soak'), \
  (SELECT sum(spend_nanos) FROM spend_logs WHERE api_key = \
    (SELECT token FROM verification_tokens WHERE key_alias = 'soak'))"
COUNT_SQL="SELECT count(*), sum(CASE WHEN http_status = 200 THEN 1 ELSE 0 END), count(DISTINCT request_id) FROM spend_logs"
if [ "$DB" = postgres ]; then
  pg_query() { runuser -u postgres -- psql -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres -At -c "$1"; }
  counts=$(pg_query "$COUNT_SQL"); key_spend=$(pg_query "$KEY_SQL")
else
  sqlite_query() { python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('|'.join('' if x is None else str(x) for x in c.execute(sys.argv[2]).fetchone()))" "$RUN/soak.db" "$1"; }
  counts=$(sqlite_query "$COUNT_SQL"); key_spend=$(sqlite_query "$KEY_SQL")
fi
python3 - "$RUN/wrk.txt" "$RUN/samples.txt" "$counts" "$DUR" "$CYCLES" "$CONC" "$key_spend" <<'PY'
import json, sys
wrk = next(json.loads(l[5:]) for l in open(sys.argv[1]) if l.startswith("JSON "))
answered_200 = wrk["requests"] - wrk["err_status"]
rows, rows_200, distinct = (int(x or 0) for x in sys.argv[3].split("|"))
samples = [l.split() for l in open(sys.argv[2])]
print("| t (s) | moment | RSS MB | of it anonymous | of it files | open files | threads |")
print("|---:|---|---:|---:|---:|---:|---:|")
for t, label, rss, fds, threads, anon, file in samples:
    if label != "load" or int(sys.argv[5]) == 0:
        print(f"| {t} | {label} | {int(rss) / 1024:.1f} | {int(anon) / 1024:.1f} | {int(file) / 1024:.1f} | {fds} | {threads} |")
load = [(int(t), int(rss), int(anon), int(file)) for t, label, rss, _, _, anon, file in samples if label == "load"]
if load:
    dur = load[-1][0]
    span = min(300, dur // 6)
    first = [s for s in load if s[0] <= span]
    last = [s for s in load if s[0] >= dur - span]
    mean = lambda rows, i: sum(r[i] for r in rows) / len(rows) / 1024
    print(f"\nRSS under load: first {span} s mean {mean(first, 1):.1f} MB, "
          f"last {span} s mean {mean(last, 1):.1f} MB, peak {max(r[1] for r in load) / 1024:.1f} MB")
    print(f"of it anonymous: first {mean(first, 2):.1f} MB, last {mean(last, 2):.1f} MB; "
          f"mapped files: first {mean(first, 3):.1f} MB, last {mean(last, 3):.1f} MB")
print(f"calls: {wrk['requests']} answered, {answered_200} with 200, {wrk['err_status']} other statuses, "
      f"{wrk['err_timeout']} timeouts, {wrk['err_connect'] + wrk['err_read'] + wrk['err_write']} socket errors")
print(f"spend rows: {rows} ({rows_200} with 200, {distinct} distinct request ids)")
# wrk stops counting with up to CONC calls still in flight; the gateway answers and records
# them, so up to CONC more rows than counted answers is expected. Fewer rows is a loss.
extra = rows_200 - answered_200
if extra < 0:
    verdict = f"NO: {-extra} answered calls have no spend row"
elif extra <= int(sys.argv[6]):
    verdict = f"yes ({extra} more rows: calls still in flight when the load tool stopped counting)"
else:
    verdict = f"NO: {extra} rows more than calls answered"
print("every call answered 200 has its spend row, once:", verdict if distinct == rows else "NO: duplicate request ids")
kept, summed = sys.argv[7].split("|")
if kept:
    same = "yes" if kept == summed else "NO"
    print(f"the virtual key's spend equals the sum of its rows: {same} ({kept} and {summed} nanodollars)")
PY
# The SQLite database grows by about 0.6 KB a call (tens of GB in 30 minutes): nothing reads it
# after the counts above.
[ "$DB" = sqlite ] && rm -rf "$RUN/soak.db" "$RUN/soak.db-wal" "$RUN/soak.db-shm" "$RUN/soak.db.spend-journal"
exit 0

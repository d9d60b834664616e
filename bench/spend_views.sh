#!/usr/bin/env bash
# Spend views at scale: seeds a fresh database with ROWS synthetic spend records through
# `tollgate seed-spend` (the gateway's own batch insert, so the daily aggregates are real),
# starts the gateway on it and times every spend view with curl (RUNS runs each, median).
# SQLite always; PostgreSQL too when PG_URL answers (its own database, dropped at the end).
# Not for CI: seeding 1M rows takes minutes.
#
# Usage: bench/spend_views.sh
# Env knobs:
#   ROWS (1000000) USERS (200) KEYS (1000) DAYS (90)   what seed-spend writes
#   RUNS (7)                     timed runs per view (the median is reported)
#   BACKENDS ("sqlite postgres") which backends to measure
#   PG_URL (postgres://postgres@127.0.0.1:5432/postgres)  server for the PostgreSQL run
#   GW_CPU (0), LOAD_CPU (1)     CPU pinning (taskset) for the gateway and curl
#   TOLLGATE_BIN                 use this binary; SKIP_BUILD=1 uses the existing release binary
#   BENCH_WORKDIR ($HOME/.cache/tollgate/bench)  where the databases and logs go
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
ROWS=${ROWS:-1000000}
USERS=${USERS:-200}
KEYS=${KEYS:-1000}
DAYS=${DAYS:-90}
RUNS=${RUNS:-7}
BACKENDS=${BACKENDS:-sqlite postgres}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}/spend_views
mkdir -p "$WORKDIR"

if [ -z "${TOLLGATE_BIN:-}" ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== cargo build --release -p tollgate"
    (cd "$REPO" && cargo build --release -p tollgate)
  fi
  TOLLGATE_BIN=$CARGO_TARGET_DIR/release/tollgate
  # Without a cargo config redirecting it, the target dir is the repo's own.
  [ -x "$TOLLGATE_BIN" ] || TOLLGATE_BIN=$REPO/target/release/tollgate
fi
[ -x "$TOLLGATE_BIN" ] || { echo "no Tollgate binary at $TOLLGATE_BIN" >&2; exit 1; }

pin() { # pin <cpu> <command…>: taskset when the machine has that CPU
  local cpu=$1; shift
  if command -v taskset >/dev/null && [ "$(nproc)" -gt "$cpu" ]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# Like pin, but replacing the calling subshell: `( pin_exec … ) &` leaves $! = the command's own
# pid, so killing it stops the gateway (killing the subshell of `pin … &` left it running).
pin_exec() {
  local cpu=$1; shift
  if command -v taskset >/dev/null && [ "$(nproc)" -gt "$cpu" ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

MASTER_KEY="sk-bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=${PORT:-4077}
GW_PID=""
PG_DB=""
cleanup() {
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

cat > "$WORKDIR/config.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, mock_response: "hi"}
general_settings: {master_key: "$MASTER_KEY"}
EOF

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_view <label> <path>: RUNS timed GETs after one warm-up; prints "label | median ms | bytes".
time_view() {
  local label=$1 path=$2 out code bytes times=()
  out=$(pin "$LOAD_CPU" curl -s -o /dev/null -w '%{http_code} %{size_download}' \
        -H "Authorization: Bearer $MASTER_KEY" "http://127.0.0.1:$PORT$path")
  code=${out% *}; bytes=${out#* }
  if [ "$code" != 200 ]; then echo "| $label | HTTP $code | | \`$path\` |"; return; fi
  for _ in $(seq "$RUNS"); do
    times+=("$(pin "$LOAD_CPU" curl -s -o /dev/null -w '%{time_total}' \
        -H "Authorization: Bearer $MASTER_KEY" "http://127.0.0.1:$PORT$path")")
  done
  local ms
  ms=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1 * 1000}')
  echo "| $label | $ms | $bytes | \`$path\` |"
}

run_backend() {
  local name=$1 url=$2
  echo
  echo "== $name: seeding $ROWS records ($USERS users, $KEYS keys, $DAYS days)"
  local t0 t1
  t0=$(date +%s.%N)
  "$TOLLGATE_BIN" seed-spend --database-url "$url" --rows "$ROWS" --users "$USERS" \
    --keys "$KEYS" --days "$DAYS" | tail -1
  t1=$(date +%s.%N)
  echo "seed wall time: $(echo "$t1 - $t0" | bc) s"

  (pin_exec "$GW_CPU" "$TOLLGATE_BIN" --config "$WORKDIR/config.yaml" --database-url "$url" \
    --host 127.0.0.1 --port "$PORT" > "$WORKDIR/gateway-$name.log" 2>&1) &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/health/liveliness" >/dev/null && break
    sleep 0.1
  done
  # A gateway left on the port would answer instead of this one (and measure the wrong database).
  kill -0 "$GW_PID" 2>/dev/null || { echo "the $name gateway exited:" >&2; tail -3 "$WORKDIR/gateway-$name.log" >&2; exit 1; }

  local today from30 from7 user team
  today=$(date -u +%F)
  from30=$(date -u -d '30 days ago' +%F)
  from7=$(date -u -d '7 days ago' +%F)
  user=seed-user-0007
  team=seed-team-03
  # A cursor deep in the log: the last row of a page 20 days back.
  local deep
  deep=$(curl -s -H "Authorization: Bearer $MASTER_KEY" \
    "http://127.0.0.1:$PORT/spend/logs/v2?page_size=1&end_date=$(date -u -d '20 days ago' +%F)" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"] or "")' | sed 's/|/%7C/')

  echo
  echo "### $name ($ROWS records, $(date -u '+%F %H:%M') UTC)"
  echo
  echo "| view | median ms ($RUNS runs) | bytes | request |"
  echo "|---|---:|---:|---|"
  time_view "daily activity, one user, 30 days" "/user/daily/activity?start_date=$from30&end_date=$today&user_id=$user"
  time_view "daily activity, one user, 90 days" "/user/daily/activity?start_date=$(date -u -d '90 days ago' +%F)&end_date=$today&user_id=$user"
  time_view "daily activity, one team, 30 days" "/team/daily/activity?start_date=$from30&end_date=$today&team_ids=$team"
  time_view "daily activity, one key, 30 days" "/user/daily/activity?start_date=$from30&end_date=$today&api_key=$(printf 'sk-seed-key-%06d' 7)"
  time_view "daily activity, everyone, 7 days" "/user/daily/activity?start_date=$from7&end_date=$today"
  time_view "daily activity, everyone, 30 days" "/user/daily/activity?start_date=$from30&end_date=$today"
  time_view "spend/logs summary, one user, 30 days" "/spend/logs?user_id=$user&start_date=$from30&end_date=$today"
  time_view "spend/logs, one user, newest 100" "/spend/logs?user_id=$user&limit=100"
  time_view "spend/logs, everyone, newest 1000 (default)" "/spend/logs"
  time_view "spend/logs/v2, everyone, page of 50" "/spend/logs/v2?page_size=50"
  time_view "spend/logs/v2, page of 50, 20 days deep" "/spend/logs/v2?page_size=50&cursor=$deep"
  time_view "spend/logs/v2, one team, page of 50" "/spend/logs/v2?team_id=$team&page_size=50"
  time_view "spend/logs/v2, one model, failures, page of 50" "/spend/logs/v2?model=gpt-4o&status_filter=failure&page_size=50"
  time_view "spend/logs, one request id" "/spend/logs?request_id=seed-000500000"
  time_view "global/spend (30 days)" "/global/spend"
  time_view "global/spend/keys, top 10" "/global/spend/keys?limit=10"
  time_view "global/spend/keys, top 100 (default)" "/global/spend/keys"
  time_view "global/spend/teams" "/global/spend/teams"
  time_view "global/spend/models" "/global/spend/models"

  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=""
}

for b in $BACKENDS; do
  case $b in
    sqlite)
      rm -rf "$WORKDIR"/spend.db*  # the spend journal beside it is a folder
      run_backend sqlite "sqlite:$WORKDIR/spend.db"
      ls -l "$WORKDIR/spend.db" | awk '{printf "database file: %.0f MB\n", $5 / 1048576}'
      ;;
    postgres)
      if ! psql "$PG_URL" -Atc 'SELECT 1' >/dev/null 2>&1; then
        echo "== postgres: $PG_URL does not answer; skipped"
        continue
      fi
      PG_DB="tollgate_bench_spend_$$"
      psql "$PG_URL" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
      pg_db_url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_URL" "$PG_DB")
      run_backend postgres "$pg_db_url"
      psql "$PG_URL" -Atc "SELECT pg_size_pretty(pg_database_size('$PG_DB'))" | sed 's/^/database size: /'
      psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
      PG_DB=""
      ;;
  esac
done

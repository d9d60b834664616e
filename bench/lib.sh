# Shared by the bench/ scripts but run.sh (sourced, after REPO, BENCH_WORKDIR, CARGO_TARGET_DIR and
# LOAD_CPU are set): the prepared work folder, the shared harness, the Tollgate binary, cleanup of
# what the script started, free ports, the mock, a one-model config, the open-files limit and
# samples of a process' memory, open files and threads.

# bench_setup RUN_NAME: sets SHARED, TOLLGATE_BIN, W and a fresh RUN folder; kills `pids` on exit.
bench_setup() {
  PREPARE_ONLY=1 bash "$REPO/bench/run.sh" >/dev/null
  # The harness' load tools, bodies and wrk script are read from where they are (read-only is fine).
  SHARED=""
  local cand
  for cand in "$REPO/../shared/bench" "${SHARED_BENCH:-}"; do
    if [ -n "$cand" ] && [ -f "$cand/tools/bench.py" ] && [ -f "$cand/wrk/post.lua" ]; then
      SHARED=$(cd "$cand" && pwd -P); break
    fi
  done
  [ -n "$SHARED" ] || { echo "bench: shared harness not found; set SHARED_BENCH" >&2; exit 1; }
  TOLLGATE_BIN=${TOLLGATE_BIN:-$CARGO_TARGET_DIR/release/tollgate}
  W=$BENCH_WORKDIR
  RUN=$W/$1
  rm -rf "$RUN"; mkdir -p "$RUN"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }

require_free_ports() {
  local port
  for port in "$@"; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then echo "port $port is in use" >&2; exit 1; fi
  done
}

# start_mock PORT: the harness' mock upstream on LOAD_CPU, logging to $RUN/mock.log.
start_mock() {
  MOCK_ADDR=127.0.0.1:$1 MOCK_THREADS=1 taskset -c "$LOAD_CPU" \
    "$W/mock-upstream/target/release/mock-upstream" > "$RUN/mock.log" 2>&1 &
  pids+=($!)
}

# write_config PATH MOCK_PORT MASTER_KEY: one chat model on the mock.
write_config() {
  cat > "$1" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$2/v1
      api_key: sk-mock
general_settings:
  master_key: $3
YAML
}

# limited_key BASE_URL MASTER ALIAS [MODELS]: prints a new virtual key as the performance targets
# state it: a model list (MODELS, a JSON list; default ["gpt-4o-mini"]), a budget and rpm, tpm and
# parallel limits far above what a run uses (every check runs, none refuses).
limited_key() {
  curl -sf "$1/key/generate" -H "Authorization: Bearer $2" -H 'content-type: application/json' \
    -d "{\"key_alias\":\"$3\",\"models\":${4:-[\"gpt-4o-mini\"]},\"max_budget\":1000000,\"rpm_limit\":100000000,\"tpm_limit\":100000000000,\"max_parallel_requests\":100000}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# wait_up URL...: until every URL answers (at most 60 s).
wait_up() {
  local u
  for u in "$@"; do
    for _ in $(seq 1 120); do curl -sf -o /dev/null "$u" && break; sleep 0.5; done
  done
}

# raise_open_files N: makes the open-files limit of this shell (and what it starts) at least N.
raise_open_files() {
  local soft
  soft=$(ulimit -Sn)
  [ "$soft" = unlimited ] && return 0
  if [ "$soft" -lt "$1" ]; then
    ulimit -n "$1" 2>/dev/null || ulimit -Sn "$1" 2>/dev/null || {
      echo "bench: the open-files limit is $soft and cannot be raised to $1 (ulimit -n)" >&2; exit 1; }
  fi
}

# start_sampler PID FILE [SECONDS]: appends "epoch_ms rss_kb open_files threads" about every
# SECONDS (0.5) while PID lives, from a loop on LOAD_CPU; stopped with the script.
start_sampler() {
  taskset -c "$LOAD_CPU" bash -c '
    while [ -d "/proc/$1" ]; do
      s=$(date +%s%3N)
      r=$(awk "/^VmRSS/{print \$2}" "/proc/$1/status" 2>/dev/null)
      t=$(awk "/^Threads/{print \$2}" "/proc/$1/status" 2>/dev/null)
      f=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
      [ -n "$r" ] && echo "$s $r $f $t" >> "$2"
      sleep "$3"
    done' _ "$1" "$2" "${3:-0.5}" &
  pids+=($!)
}

# rss_kb PID, open_files PID: one reading now.
# seed_keys DB COUNT USERS RPM: a fresh SQLite database with COUNT virtual keys from
# `tollgate seed-spend --rows 0` (keys `sk-seed-key-<n, six digits>`, owned by USERS users, every
# fourth a team key), each given rpm_limit = RPM ("none": no limit) in the column the store
# writes, while Tollgate is not running. The seeding binary is SEED_BIN, else TOLLGATE_BIN.
seed_keys() {
  "${SEED_BIN:-$TOLLGATE_BIN}" seed-spend --database-url "sqlite:$1" --rows 0 --keys "$2" \
    --users "$3" > "$RUN/seed.log"
  if [ "$4" != none ]; then
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE verification_tokens SET rpm_limit = ? WHERE created_by = 'seed-spend'\", (int(sys.argv[2]),)); c.commit()" "$1" "$4"
  fi
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
open_files() { ls "/proc/$1/fd" | wc -l; }
now_ms() { date +%s%3N; }

# connection_cap LOG: the connection cap Tollgate logged at start ("client limits").
connection_cap() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'max_connections=[0-9]*' | head -n1 | cut -d= -f2 || true
}

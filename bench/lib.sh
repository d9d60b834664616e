# Shared by bench/virtual_key.sh and bench/floor.sh (sourced, after REPO, BENCH_WORKDIR,
# CARGO_TARGET_DIR and LOAD_CPU are set): the prepared work folder, the shared harness, the
# Tollgate binary, cleanup of what the script started, free ports, the mock and a one-model config.

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

# wait_up URL...: until every URL answers (at most 60 s).
wait_up() {
  local u
  for u in "$@"; do
    for _ in $(seq 1 120); do curl -sf -o /dev/null "$u" && break; sleep 0.5; done
  done
}

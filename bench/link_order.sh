#!/usr/bin/env bash
# Writes crates/tollgate/link-order.txt: the functions a serving gateway executes, for the linker
# to place together (crates/tollgate/build.rs). A release binary serves the same workload three
# times, each from start-up on a fresh SQLite database to a shutdown that flushes the spend:
# under callgrind pinned to one core (tokio's single-threaded scheduler) and on every core (the
# multi-threaded one), which see every function that runs, and natively under perf, whose
# samples add what runs only on this CPU's own instructions (valgrind's CPU lacks some).
# The workload: a virtual key made through /key/generate; four clients (three on the key, one on
# the master key) each making ROUNDS rounds of a chat call, a streamed chat call (50 chunks), an
# embeddings call and a chat call on the unversioned path; a refused call of each common kind
# (unknown key, unknown model, a model the key may not use, bad JSON); the health, metrics and
# models endpoints; wrk at 50 connections for WRK_SECS each with chat, streamed chat and
# embeddings, and at 200 with chat. The list holds what callgrind saw, the most instructions
# first, then what only perf saw.
#
# The list names symbols as this compiler and these dependency versions spell them; it goes stale
# (and then does nothing, but no harm) after a toolchain or Cargo.lock change. CHECK=1 only reports
# how much of the present list the binary has and how far apart those functions lie.
# Needs valgrind; perf if present (Debian's linux-perf). Loopback only; about a minute and a half.
#
# Usage: bench/link_order.sh   (env: ROUNDS (30), WRK_SECS (4), CHECK, GW_CPU (0), LOAD_CPU (1),
#                               BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
ROUNDS=${ROUNDS:-30}
WRK_SECS=${WRK_SECS:-4}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LIST=$REPO/crates/tollgate/link-order.txt
MOCK_PORT=18132
GW_PORT=4232
MASTER=sk-bench-order-3e5a7c9b1d3f5e7a9c1b3d5f7a9e1c3b

source "$REPO/bench/lib.sh"
bench_setup link-order-run
if [ -n "${CHECK:-}" ]; then
  python3 "$REPO/bench/tools/link_order.py" check "$TOLLGATE_BIN" "$LIST"
  exit 0
fi
command -v valgrind >/dev/null || { echo "link_order.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
require_free_ports $MOCK_PORT $GW_PORT
MOCK_CHUNKS=50 start_mock $MOCK_PORT
cat > "$RUN/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
  # Flow style here, block style above: a config may use either, and YAML reads them apart.
  - model_name: text-embedding-3-small
    litellm_params: {model: openai/text-embedding-3-small, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-mock}
general_settings:
  master_key: $MASTER
YAML
wait_up http://127.0.0.1:$MOCK_PORT/health

# workload: a virtual key, then the calls described at the top.
workload() {
  KEY=$(limited_key "http://127.0.0.1:$GW_PORT" "$MASTER" link-order \
    '["gpt-4o-mini","text-embedding-3-small"]')
  taskset -c "$LOAD_CPU" python3 - "$KEY" "$MASTER" "$GW_PORT" "$ROUNDS" "$SHARED/bodies" <<'PY'
import http.client, sys, threading
key, master, port, rounds, bodies = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
read = lambda name: open(f"{bodies}/{name}", "rb").read()
calls = [("/v1/chat/completions", read("chat.json")), ("/v1/chat/completions", read("chat_stream.json")),
         ("/v1/embeddings", read("embed.json")), ("/chat/completions", read("chat.json"))]
failures = []

def call(conn, token, path, body, want):
    conn.request("POST", path, body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status != want:
        failures.append(f"{path}: HTTP {r.status}, wanted {want}")

def client(token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(rounds):
        for path, body in calls:
            call(conn, token, path, body, 200)

threads = [threading.Thread(target=client, args=(t,)) for t in (key, key, key, master)]
[t.start() for t in threads]; [t.join() for t in threads]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
call(conn, "sk-not-a-key", "/v1/chat/completions", calls[0][1], 401)
unknown = b'{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}'
call(conn, master, "/v1/chat/completions", unknown, 400)
call(conn, key, "/v1/chat/completions", unknown, 403)
call(conn, key, "/v1/chat/completions", b'{"model":', 400)
for path in ("/health/liveliness", "/metrics", "/v1/models"):
    conn.request("GET", path, headers={"Authorization": f"Bearer {master}"}); conn.getresponse().read()
if failures:
    sys.exit("link_order.sh: " + "; ".join(sorted(set(failures))))
PY
  # Many connections at once, opened and closed by wrk (its teardown paths; under 200 at once
  # tokio's scheduler takes paths it takes only when busy), and enough recorded calls for SQLite
  # to checkpoint its write-ahead log.
  for run in chat:50 chat_stream:50 embed:50 chat:200; do
    body=${run%:*} conns=${run#*:} path=/v1/chat/completions
    [ "$body" = embed ] && path=/v1/embeddings
    BODY_FILE=$SHARED/bodies/$body.json WRK_HDR1="Authorization: Bearer $KEY" taskset -c "$LOAD_CPU" \
      wrk -t1 -c"$conns" -d"$WRK_SECS"s --timeout=30s -s "$SHARED/wrk/post.lua" "http://127.0.0.1:$GW_PORT$path" > /dev/null
  done
}

# pass NAME PREFIX...: starts Tollgate under PREFIX on a fresh database, runs the workload, and
# stops it (which flushes the spend).
pass() {
  local name=$1; shift
  rm -f "$RUN/$name.db"*
  (cd "$RUN" && exec "$@" "$TOLLGATE_BIN" --config "$RUN/config.yaml" --host 127.0.0.1 \
    --port $GW_PORT --database-url "sqlite:$RUN/$name.db") > "$RUN/$name.log" 2>&1 &
  local gw=$!
  pids+=($gw)
  wait_up "http://127.0.0.1:$GW_PORT/health/readiness"
  workload
  sleep 3
  # Under perf, Tollgate is perf's child; under valgrind, the process itself.
  local target
  target=$(pgrep -P "$gw" | head -1 || true)
  kill -TERM "${target:-$gw}"; wait "$gw" 2>/dev/null || true
}

# Callgrind sees every function that runs, on one core (tokio's single-threaded scheduler, as
# Tollgate picks when it has one core) and on all of them (the multi-threaded one).
callgrind=(valgrind --tool=callgrind --demangle=no --compress-strings=no)
pass one-core taskset -c "$GW_CPU" "${callgrind[@]}" --callgrind-out-file="$RUN/callgrind.one-core"
pass all-cores "${callgrind[@]}" --callgrind-out-file="$RUN/callgrind.all-cores"
# Valgrind's CPU lacks some of this one's instructions (SHA-NI), so code chosen at run time by
# the CPU's features runs only natively: perf samples a native run for what callgrind missed.
samples=()
if command -v perf >/dev/null; then
  pass native taskset -c "$GW_CPU" perf record -q -F 10000 -o "$RUN/perf.data" --
  perf script --no-demangle -i "$RUN/perf.data" -F ip,sym,dso 2>/dev/null \
    | awk -v bin="($TOLLGATE_BIN)" '$NF == bin {print $2}' > "$RUN/perf.symbols"
  samples=("$RUN/perf.symbols")
else
  echo "== link_order.sh: no perf (apt-get install linux-perf); only callgrind's functions are listed"
fi
python3 "$REPO/bench/tools/link_order.py" write "$TOLLGATE_BIN" "$LIST" "$RUN"/callgrind.* "${samples[@]}"
echo "== wrote $LIST ($(wc -l < "$LIST") functions)"

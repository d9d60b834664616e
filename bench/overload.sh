#!/usr/bin/env bash
# H3, overload: closed-loop chat load (wrk) ramped in steps from CONCS's first concurrency to its
# last (10 → 2000 connections), past what one core serves, then dropped back to 10 at once.
# Run twice, each on a fresh Tollgate: MODES "default" (the connection cap Tollgate derives from
# the open-files limit, far above the load, so every connection is admitted and queues) and
# "cap" (TOLLGATE_MAX_CONNECTIONS=CAP, so connections past it are refused with 503).
# In each step a probe (wrk, PROBE connections opened before the flood, so always admitted)
# measures what admitted calls see, while the flood's answers are counted by status (200, 503,
# other), socket errors and timeouts (a call unanswered for 10 s: a hang). Tollgate's RSS, open
# files and threads are sampled through every step. After the last step, three 2-s windows at
# concurrency 10 show whether it recovers at once. Every call answered 200 (warm-up included) must
# have its spend row (the load tool stops counting with calls in flight: up to its concurrency
# each time).
# Same placement as bench/run.sh: Tollgate on GW_CPU, mock and load on LOAD_CPU. Loopback only;
# about MODES × (steps × (STEP + 2) + 15) s.
#
# Usage: bench/overload.sh   (env: CONCS ("10 50 200 500 1000 2000"), STEP (8 s), CAP (256),
#                             MODES ("default cap"), PROBE (10), GW_CPU (0), LOAD_CPU (1),
#                             BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
CONCS=${CONCS:-"10 50 200 500 1000 2000"}
STEP=${STEP:-8}
CAP=${CAP:-256}
MODES=${MODES:-"default cap"}
PROBE=${PROBE:-10}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18100
GW_PORT=4197
MASTER=sk-bench-overload-2e4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e

source "$REPO/bench/lib.sh"
bench_setup overload-run
require_free_ports $MOCK_PORT $GW_PORT
MAX_C=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -n1)
raise_open_files $(( 4 * MAX_C + 1024 ))
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
wait_up http://127.0.0.1:$MOCK_PORT/health
URL=http://127.0.0.1:$GW_PORT/v1/chat/completions
export BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $MASTER"
LUA=$REPO/bench/wrk/load.lua
echo "== overload $(date -Is): steps \"$CONCS\" of ${STEP}s, modes \"$MODES\", cap $CAP, probe $PROBE, open-files limit $(ulimit -Sn)"

load() { # out conc secs
  taskset -c "$LOAD_CPU" wrk -t1 -c"$2" -d"$3"s --timeout=10s -s "$LUA" "$URL" | grep '^JSON ' | cut -c6- > "$1" || true
}

for mode in $MODES; do
  D=$RUN/$mode; mkdir -p "$D"
  if [ "$mode" = cap ]; then export TOLLGATE_MAX_CONNECTIONS=$CAP; else unset TOLLGATE_MAX_CONNECTIONS; fi
  (cd "$D" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" \
    --host 127.0.0.1 --port $GW_PORT --database-url "sqlite:$D/overload.db") > "$D/tollgate.log" 2>&1 &
  TG=$!; pids+=($!)
  wait_up http://127.0.0.1:$GW_PORT/health/readiness
  unset TOLLGATE_MAX_CONNECTIONS
  connection_cap "$D/tollgate.log" > "$D/cap.txt"
  echo "== overload: mode $mode, connection cap $(cat "$D/cap.txt")"
  load "$D/warmup.json" 10 2
  sleep 1
  echo "idle $(rss_kb $TG) $(open_files $TG)" > "$D/marks.txt"
  start_sampler $TG "$D/samples.txt" 0.5
  for c in $CONCS; do
    echo "   step c=$c"
    t0=$(now_ms)
    load "$D/probe-$c.json" "$PROBE" $(( STEP + 1 )) &
    probe=$!
    sleep 0.5
    load "$D/flood-$c.json" "$c" "$STEP"
    wait $probe || true
    echo "step $c $t0 $(now_ms) $([ -d /proc/$TG ] && echo alive || echo DEAD)" >> "$D/marks.txt"
    [ -d /proc/$TG ] || break
    sleep 0.5
  done
  # The load drops: concurrency 10 at once, three 2-s windows.
  for i in 1 2 3; do
    t0=$(now_ms)
    [ -d /proc/$TG ] && load "$D/recover-$i.json" 10 2
    echo "recover $i $t0 $(now_ms) $([ -d /proc/$TG ] && echo alive || echo DEAD)" >> "$D/marks.txt"
  done
  sleep 2
  echo "after $(rss_kb $TG 2>/dev/null || echo 0) $(open_files $TG 2>/dev/null || echo 0)" >> "$D/marks.txt"
  awk '/^VmHWM/{print $2}' "/proc/$TG/status" > "$D/hwm.txt" 2>/dev/null || true
  kill -TERM $TG 2>/dev/null || true; wait $TG 2>/dev/null || true
  python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM spend_logs WHERE http_status = 200').fetchone()[0])" "$D/overload.db" > "$D/rows.txt"
  rm -rf "$D"/overload.db*   # hundreds of MB after a full run
  sleep 1
done

python3 - "$RUN" "$MODES" "$CONCS" "$PROBE" <<'PY'
import json, os, sys
run, modes, concs, probe_c = sys.argv[1], sys.argv[2].split(), [int(c) for c in sys.argv[3].split()], int(sys.argv[4])
def wrk(path):
    try:
        return json.loads(open(path).read())
    except Exception:
        return None
print("\nAll counts are answers within the step; admitted = the probe's calls (connections opened before the flood).")
for mode in modes:
    d = f"{run}/{mode}"
    if not os.path.isdir(d):
        continue
    marks = [l.split() for l in open(f"{d}/marks.txt")]
    samples = [[int(x) for x in l.split()] for l in open(f"{d}/samples.txt") if len(l.split()) == 4] if os.path.exists(f"{d}/samples.txt") else []
    idle = next(m for m in marks if m[0] == "idle")
    cap = open(f"{d}/cap.txt").read().strip() or "?"
    print(f"\n### mode {mode} (connection cap {cap}; idle RSS {int(idle[1]) / 1024:.1f} MB, {idle[2]} open files)\n")
    print("| load conc | answers/s | 200/s | 503/s | other status | socket errors/s | timeouts | flood p50 / p99 ms | admitted p50 / p99 ms | admitted 200/s | RSS peak MB | open files peak | alive |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    w = wrk(f"{d}/warmup.json")
    counted_200 = w["s200"] if w else 0; in_flight = 10; base_p99 = None; worst = 0.0; peak_rss = 0; timeouts = 0
    for m in marks:
        if m[0] not in ("step", "recover"):
            continue
        label, t0, t1, alive = m[1], int(m[2]), int(m[3]), m[4]
        if m[0] == "step":
            f, p, conc = wrk(f"{d}/flood-{label}.json"), wrk(f"{d}/probe-{label}.json"), int(label)
        else:
            f, p, conc = wrk(f"{d}/recover-{label}.json"), None, 10
        win = [s for s in samples if t0 <= s[0] <= t1]
        rss = max((s[1] for s in win), default=0); fds = max((s[2] for s in win), default=0)
        peak_rss = max(peak_rss, rss)
        if not f:
            print(f"| {label} | no result | | | | | | | | | {rss / 1024:.0f} | {fds} | {alive} |"); continue
        secs = f["duration_us"] / 1e6
        sock = f["err_connect"] + f["err_read"] + f["err_write"]
        timeouts += f["err_timeout"]
        counted_200 += f["s200"] + (p["s200"] if p else 0); in_flight += conc + (probe_c if p else 0)
        adm = "-"; adm_rps = "-"
        if p:
            adm = f"{p['p50_us'] / 1e3:.1f} / {p['p99_us'] / 1e3:.1f}"
            adm_rps = f"{p['s200'] / (p['duration_us'] / 1e6):,.0f}"
            base_p99 = base_p99 or p["p99_us"]
            worst = max(worst, p["p99_us"] / base_p99)
            timeouts += p["err_timeout"]
        name = f"{conc}" if m[0] == "step" else f"10 (after, window {label})"
        print(f"| {name} | {f['requests'] / secs:,.0f} | {f['s200'] / secs:,.0f} | {f['s503'] / secs:,.0f} | {f['s_other']:,} | {sock / secs:,.0f} | {f['err_timeout']} | "
              f"{f['p50_us'] / 1e3:.1f} / {f['p99_us'] / 1e3:.1f} | {adm} | {adm_rps} | {rss / 1024:.0f} | {fds} | {alive} |")
    after = next((m for m in marks if m[0] == "after"), None)
    rows = int(open(f"{d}/rows.txt").read())
    hwm = open(f"{d}/hwm.txt").read().strip() if os.path.exists(f"{d}/hwm.txt") else ""
    print(f"\nadmitted p99 at worst {worst:.1f}× the first step's; timeouts (hangs) {timeouts}; "
          f"process peak RSS {int(hwm) / 1024 if hwm else 0:.1f} MB; 2 s after the load: RSS {int(after[1]) / 1024:.1f} MB, {after[2]} open files")
    extra = rows - counted_200
    verdict = "yes" if 0 <= extra <= in_flight else ("NO: calls answered 200 without a spend row" if extra < 0 else "NO: more rows than calls")
    print(f"spend rows with 200: {rows:,} for {counted_200:,} counted 200 answers (+{extra} calls in flight when wrk stopped counting, at most {in_flight}): {verdict}")
PY

#!/usr/bin/env bash
# Tollgate performance check: builds the release binary, then runs the shared peer benchmark
# harness (../../shared/bench/run.sh) against a fast mock upstream, with Tollgate pinned to CPU 0 and
# the load generator + mock upstream on CPU 1. Prints direct-vs-Tollgate req/s and p50/p90/p99 at
# concurrency 1,10,50,200 (plain chat), embeddings, streaming TTFB at concurrency 10 (plain and paced
# mock), the added latency vs direct and Tollgate's peak RSS/PSS, all from the same run.
#
# Usage: bench/run.sh
# Env knobs (passed through to the shared harness):
#   DUR (15)            seconds per load step
#   CONCS (1,10,50,200) chat concurrency levels
#   TARGETS ("direct tollgate")  add "litellm" and/or "portkey" for the peer comparison
#                       (then the harness' full `setup` runs: LiteLLM venv, portkey via npm; slow)
#   GW_CPU (0), LOAD_CPU (1)
#   BENCH_WORKDIR ($HOME/.cache/tollgate/bench)  writable work folder (venvs, mock build, logs, results)
#   SHARED_BENCH        path to the shared harness folder if it is not at <repo>/../shared/bench
#   TOLLGATE_BIN        use this binary instead of building target/release/tollgate
#   SKIP_BUILD=1        don't run cargo build (requires TOLLGATE_BIN or an existing release binary)
#   PREPARE_ONLY=1      build and install what the harness needs, then stop
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}

# Locate the shared harness.
SHARED=""
for cand in "$REPO/../shared/bench" "${SHARED_BENCH:-}"; do
  if [ -n "$cand" ] && [ -f "$cand/run.sh" ]; then SHARED=$(cd "$cand" && pwd -P); break; fi
done
if [ -z "$SHARED" ]; then
  echo "bench: shared harness not found at $REPO/../shared/bench; set SHARED_BENCH=/path/to/shared/bench" >&2
  exit 1
fi

export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export TARGETS=${TARGETS:-direct tollgate}
export DUR=${DUR:-15}
WORKDIR=$BENCH_WORKDIR
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd -P)
want() { [[ " $TARGETS " == *" $1 "* ]]; }

# 1) Tollgate release binary
if [ -z "${TOLLGATE_BIN:-}" ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== bench: cargo build --release -p tollgate"
    (cd "$REPO" && cargo build --release -p tollgate)
  fi
  TOLLGATE_BIN=$CARGO_TARGET_DIR/release/tollgate
fi
[ -x "$TOLLGATE_BIN" ] || { echo "bench: no Tollgate binary at $TOLLGATE_BIN" >&2; exit 1; }
TOLLGATE_BIN=$(cd "$(dirname "$TOLLGATE_BIN")" && pwd -P)/$(basename "$TOLLGATE_BIN")
export TOLLGATE_BIN
echo "== bench: tollgate binary $TOLLGATE_BIN ($("$TOLLGATE_BIN" --version 2>/dev/null || echo '?'))"

# 2) What the harness' `bench` step needs. For TARGETS made of direct/tollgate only that is: wrk, bc,
#    ss, taskset, curl, a tools venv with aiohttp and the mock upstream binary. The harness' own `setup`
#    also installs LiteLLM and Portkey (slow), so run it only when those targets are requested.
#    The mock is built with its own target dir inside the work folder: the harness starts it from
#    mock-upstream/target/release/, while this machine's cargo config redirects target dirs elsewhere.
MOCK_TARGET=$WORKDIR/mock-upstream/target
missing_apt=()
command -v wrk >/dev/null || missing_apt+=(wrk)
command -v bc >/dev/null || missing_apt+=(bc)
command -v ss >/dev/null || missing_apt+=(iproute2)
command -v taskset >/dev/null || missing_apt+=(util-linux)
command -v curl >/dev/null || missing_apt+=(curl)
if [ ${#missing_apt[@]} -gt 0 ]; then
  echo "== bench: apt-get install ${missing_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}"
fi
if ! { [ -x "$WORKDIR/.venv-tools/bin/python" ] && "$WORKDIR/.venv-tools/bin/python" -c 'import aiohttp' 2>/dev/null; }; then
  echo "== bench: creating $WORKDIR/.venv-tools (aiohttp)"
  python3 -m venv "$WORKDIR/.venv-tools"
  "$WORKDIR/.venv-tools/bin/pip" install -q aiohttp
fi
if [ ! -x "$MOCK_TARGET/release/mock-upstream" ]; then
  echo "== bench: building the mock upstream"
  mkdir -p "$WORKDIR/mock-upstream"
  rm -rf "$WORKDIR/mock-upstream/src"
  cp -r "$SHARED/mock-upstream/src" "$SHARED/mock-upstream/Cargo.toml" "$SHARED/mock-upstream/Cargo.lock" "$WORKDIR/mock-upstream/"
  chmod -R u+w "$WORKDIR/mock-upstream"
  (cd "$WORKDIR/mock-upstream" && CARGO_TARGET_DIR=$MOCK_TARGET cargo build --release -q)
fi
if want litellm || want portkey; then
  echo "== bench: shared harness setup (LiteLLM / Portkey requested)"
  CARGO_TARGET_DIR=$MOCK_TARGET bash "$SHARED/run.sh" setup
fi

# PREPARE_ONLY=1: stop here (bench/virtual_key.sh uses the prepared work folder).
if [ "${PREPARE_ONLY:-0}" = 1 ]; then echo "== bench: prepared $WORKDIR"; exit 0; fi

# 3) Measure.
echo "== bench: TARGETS=\"$TARGETS\" DUR=$DUR CONCS=${CONCS:-1,10,50,200} GW_CPU=${GW_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} workdir=$WORKDIR"
rc=0
bash "$SHARED/run.sh" bench || rc=$?
SUMMARY=$WORKDIR/results/summary.md
echo
if [ $rc -ne 0 ]; then
  echo "bench: the harness failed (exit $rc); logs are in $WORKDIR/logs/ (Tollgate: $WORKDIR/logs/tollgate.log)" >&2
  [ -f "$WORKDIR/logs/tollgate.log" ] && { echo "--- last lines of tollgate.log" >&2; tail -n 40 "$WORKDIR/logs/tollgate.log" >&2; }
  exit $rc
fi
echo "== bench: summary: $SUMMARY (raw: $WORKDIR/results/results.jsonl, versions: $WORKDIR/results/versions.txt)"
cat "$SUMMARY"

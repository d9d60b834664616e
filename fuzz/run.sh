#!/usr/bin/env bash
# Runs the property tests of every parser that reads caller, upstream or operator input for
# longer than CI does: the request-body parser, the SSE readers (OpenAI-style and Anthropic),
# the config loader, and the duration and money parsers.
#
#   fuzz/run.sh [minutes per target, default 2]
#
# Not part of CI. Each target runs about as many cases as fit in its time, sized by a first run
# of 1,000 cases (cargo's own start-up counts in that, so the estimate errs short). A failure prints
# proptest's minimal input and saves it under the crate's proptest-regressions/ folder: commit
# that file, and the case is replayed by every later `cargo test` as a regression test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
minutes=${1:-2}
targets=(
  "tollgate-proxy --test props"
  "tollgate-proxy --lib stream::tests::props"
  "tollgate-domain --test props"
  "tollgate --test props_config"
)
status=0
for t in "${targets[@]}"; do
  echo "== $t ($minutes min)"
  # shellcheck disable=SC2086
  cargo test --release -q --no-run -p $t >/dev/null 2>&1 || true   # build before timing
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  PROPTEST_CASES=1000 cargo test --release -q -p $t >/dev/null 2>&1 || true
  per_case_ns=$(( ($(date +%s%N) - start) / 1000 + 1 ))
  cases=$(( minutes * 60 * 1000000000 / per_case_ns ))
  echo "   about $cases cases per test"
  # shellcheck disable=SC2086
  if ! PROPTEST_CASES=$cases timeout $(( minutes * 60 * 4 + 120 )) cargo test --release -q -p $t; then
    echo "!! $t failed: see proptest's minimal failing input above" >&2
    status=1
  fi
done
exit $status

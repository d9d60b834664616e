#!/usr/bin/env bash
# Fetches LiteLLM's database schema as LiteLLM ships it: the migration SQL files of the
# litellm-proxy-extras wheel on PyPI, extracted into a cache folder (never committed). Prints the
# migrations folder, for TOLLGATE_TEST_LITELLM_MIGRATIONS (the `tollgate import litellm` tests
# apply every <folder>/*/migration.sql in name order to a fresh PostgreSQL database).
#
# Usage: scripts/litellm-schema.sh [python]   (default: $TOLLGATE_PYTHON, else python3; it needs pip)
# Env:   LITELLM_PROXY_EXTRAS_VERSION (default pinned below: the tests insert rows with its columns)
#        TOLLGATE_LITELLM_CACHE (default $HOME/.cache/tollgate/litellm-proxy-extras)
set -euo pipefail

PY=${1:-${TOLLGATE_PYTHON:-python3}}
VERSION=${LITELLM_PROXY_EXTRAS_VERSION:-0.4.110}
CACHE=${TOLLGATE_LITELLM_CACHE:-$HOME/.cache/tollgate/litellm-proxy-extras}
DEST="$CACHE/$VERSION"

if [ ! -f "$DEST/.complete" ]; then
  rm -rf "$DEST"
  mkdir -p "$DEST/wheel"
  "$PY" -m pip download -q --no-deps --only-binary=:all: \
    "litellm-proxy-extras==$VERSION" -d "$DEST/wheel" >&2
  "$PY" - "$DEST" <<'PY'
import glob, sys, zipfile
dest = sys.argv[1]
(wheel,) = glob.glob(f"{dest}/wheel/*.whl")
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist()
             if n.startswith("litellm_proxy_extras/migrations/") and n.endswith("/migration.sql")]
    if not names:
        sys.exit("no migrations in " + wheel)
    for n in names:
        z.extract(n, dest)
PY
  rm -rf "$DEST/wheel"
  touch "$DEST/.complete"
fi
echo "$DEST/litellm_proxy_extras/migrations"

#!/usr/bin/env bash
# PNGs of the web UI's main pages as each role sees them (1280×800, plus phone-sized 390×844 and
# 360×780), taken in headless Chromium against a freshly seeded gateway: users of every role,
# teams, invitations, keys and two weeks of spend, so Home, Keys, Usage (whole gateway, per user,
# per team, 7 and 30 days) and Models show real figures. Needs chromium and chromium-driver
# (`apt-get install chromium chromium-driver`; TOLLGATE_CHROMEDRIVER overrides the driver path).
# Usage: scripts/screenshots.sh [output dir, default ./screenshots]
set -euo pipefail

dir=${1:-${TOLLGATE_SCREENSHOTS_DIR:-./screenshots}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOLLGATE_SCREENSHOTS_DIR="$dir" cargo test -p tollgate --test ui_browser screenshots -- --ignored
echo "screenshots: $dir"

#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (tests/install.sh), then run it.
# Usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# (TESTS_INSTALLED=1: already done, as .ci/run does it, side by side with its other steps)
[ -n "${TESTS_INSTALLED:-}" ] || bash tests/install.sh

# every tier (tests/unit, integration, differential with its random sequences, interop, browser,
# hub, stress); pytest arguments naming tests replace the default set
export DIFFERENTIAL_BULK="${DIFFERENTIAL_BULK:-1}"
python -m pytest -o testpaths=tests --durations=25 "$@"

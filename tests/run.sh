#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it.
# Usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    # The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    # the PostgreSQL store's tests start their own cluster (tests/postgres.py)
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

# The installs below are independent (three environments, one node folder): they run side by
# side, mostly waiting on downloads, and the script stops if any of them fails.
install_package() {
    python -m pip install -q -e ".[test]"
}

# jupyter-collaboration's server, the differential suite's oracle (tests/differential), in a
# venv of its own: installed next to this extension it would serve the same routes
install_stock() {
    local requirements=bench/requirements-stock.txt
    if ! cmp -s "$requirements" .venv-stock/.installed-requirements 2>/dev/null; then
        [ -x .venv-stock/bin/python ] || python -m venv .venv-stock
        .venv-stock/bin/python -m pip install -q -r "$requirements"
        cp "$requirements" .venv-stock/.installed-requirements
    fi
}

# jupyter-mcp-server (tests/interop), in a venv of its own: it brings jupyter-collaboration and
# jupyter-server-nbmodel, whose server extensions would serve this extension's routes
install_mcp() {
    local requirements=tests/interop/requirements-mcp.txt
    if ! cmp -s "$requirements" .venv-mcp/.installed-requirements 2>/dev/null; then
        [ -x .venv-mcp/bin/python ] || python -m venv .venv-mcp
        .venv-mcp/bin/python -m pip install -q -r "$requirements"
        cp "$requirements" .venv-mcp/.installed-requirements
    fi
}

# JupyterHub's proxy, for the JupyterHub tests (kept out of the system's node modules)
install_proxy() {
    if [ ! -x .ci/node/node_modules/.bin/configurable-http-proxy ]; then
        npm install --silent --no-fund --no-audit --prefix .ci/node configurable-http-proxy@5 >/dev/null
    fi
}

installs=()
for install in install_package install_stock install_mcp install_proxy; do
    "$install" &
    installs+=("$!")
done
for pid in "${installs[@]}"; do
    wait "$pid"
done

# every tier (tests/unit, integration, differential with its random sequences, interop, browser,
# hub, stress); pytest arguments naming tests replace the default set
export DIFFERENTIAL_BULK="${DIFFERENTIAL_BULK:-1}"
python -m pytest -o testpaths=tests --durations=25 "$@"

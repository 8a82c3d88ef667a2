#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (tests/run.sh runs this first).
# Usage: bash tests/install.sh [environments]
#   with no argument: the package with its test extra, and the environments below
#   environments: all but the package (system packages, two venvs, the hub's proxy), which
#                 mostly wait on downloads: .ci/run installs them while the package builds
set -euo pipefail
cd "$(dirname "$0")/.."

install_system_packages() {
    local SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    if [ ! -x /usr/bin/chromium ]; then
        # The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    fi
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        # the PostgreSQL store's tests start their own cluster (tests/postgres.py)
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    fi
}

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

case "${1:-}" in
    "") parts=(install_package install_stock install_mcp install_proxy) ;;
    environments) parts=(install_stock install_mcp install_proxy) ;;
    *) echo "usage: bash tests/install.sh [environments]" >&2; exit 2 ;;
esac

# apt first, alone (one apt at a time); the rest are independent and run side by side, and
# the script fails if any of them does
install_system_packages
installs=()
for install in "${parts[@]}"; do
    "$install" &
    installs+=("$!")
done
for pid in "${installs[@]}"; do
    wait "$pid"
done

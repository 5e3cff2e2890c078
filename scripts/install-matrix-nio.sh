#!/usr/bin/env bash
# Installs matrix-nio (a third-party Python Matrix client library, unmodified,
# from PyPI, pinned) into the project-local venv .tools/nio-venv, unless it is
# already there, and prints the venv's python on stdout (everything else goes
# to stderr). The Matrix interoperability test drives Axon with it.
#
# Usage: scripts/install-matrix-nio.sh    -> prints e.g. <repo>/.tools/nio-venv/bin/python
set -euo pipefail

NIO_VERSION="0.26.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/nio-venv"
PYTHON="$VENV/bin/python"

is_pinned() {
    [ -x "$PYTHON" ] &&
        [ "$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("matrix-nio"))' 2>/dev/null)" = "$NIO_VERSION" ]
}

if ! is_pinned; then
    echo "installing matrix-nio $NIO_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check \
        "matrix-nio==$NIO_VERSION" >&2
    if ! is_pinned; then
        echo "error: matrix-nio $NIO_VERSION is not importable from $PYTHON" >&2
        exit 1
    fi
fi

echo "$PYTHON"

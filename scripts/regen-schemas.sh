#!/usr/bin/env bash
# Regenerates the committed Rust code of the native protocol from
# schemas/axon.fbs with the pinned flatc (see scripts/install-flatc.sh).
# The output, schemas/src/generated/axon_generated.rs, is never edited by hand;
# schemas/tests/generated_is_fresh.rs fails when it is stale.
#
# Usage:
#   scripts/regen-schemas.sh              regenerate the committed file
#   scripts/regen-schemas.sh --out DIR    write axon_generated.rs into DIR
#                                         instead (used by the freshness test)
# Environment:
#   AXON_FLATC   flatc binary to use (must be 25.12.19); default: install the
#                pinned one with scripts/install-flatc.sh
set -euo pipefail

FLATC_VERSION="25.12.19"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/schemas/src/generated"

if [ "${1:-}" = "--out" ]; then
    OUT="${2:?--out needs a directory}"
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--out DIR]" >&2
    exit 2
fi

FLATC="${AXON_FLATC:-$("$ROOT/scripts/install-flatc.sh")}"
if [ "$("$FLATC" --version 2>/dev/null)" != "flatc version $FLATC_VERSION" ]; then
    echo "error: $FLATC is not flatc $FLATC_VERSION; run scripts/install-flatc.sh" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# --require-explicit-ids: every field carries `(id: N)`, so reordering fields
# in the .fbs can never silently change the wire format.
# One output file (no --rust-module-root-file): the crate includes it as a
# single module, schemas/src/generated.rs.
cd "$ROOT/schemas"
"$FLATC" --rust --require-explicit-ids -o "$OUT" axon.fbs
echo "wrote $OUT/axon_generated.rs" >&2

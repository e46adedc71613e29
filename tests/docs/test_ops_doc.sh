#!/usr/bin/env bash
# docs/ops.md must be what the registry says today (scripts/gen-ops-doc).
set -u
src=$1 build=$2
if diff -u "$src/docs/ops.md" <("$src/scripts/gen-ops-doc" "$build" -) >/tmp/ops-doc-diff.$$ 2>&1; then
  echo "ok 1 - docs/ops.md matches the op registry"
  rc=0
else
  sed 's/^/# /' /tmp/ops-doc-diff.$$ | head -n 40
  echo "not ok 1 - docs/ops.md is stale: run scripts/gen-ops-doc $build"
  rc=1
fi
rm -f /tmp/ops-doc-diff.$$
echo "1..1"
exit $rc

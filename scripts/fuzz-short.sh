#!/usr/bin/env bash
# Runs every native fuzz target in the module briefly (FUZZTIME each,
# default 10s). CI uses it; for a long run: FUZZTIME=10m scripts/fuzz-short.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
status=0
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/mailbrake-fuzz.log 2>&1; then
      cat /tmp/mailbrake-fuzz.log
      status=1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
exit $status

#!/usr/bin/env bash
# Mutation-fuzzes every native fuzz target in the module, FUZZTIME each
# (default 10s): `make fuzz`, or for a long run `make fuzz FUZZTIME=10m`.
# Not part of `make test` or CI: a mutation run can find a new input at any
# time, and a finding must be fixed and its input committed as a seed
# (testdata/fuzz/<Target>/), which `make test` then runs every time.
# FUZZ_ONLY=regexp limits the run to matching target names.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
status=0
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    if [ -n "${FUZZ_ONLY:-}" ] && ! [[ "$target" =~ $FUZZ_ONLY ]]; then continue; fi
    echo "fuzz $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/mailbrake-fuzz.log 2>&1; then
      # On a loaded machine the fuzzing engine itself can miss its own
      # deadline while stopping ("context deadline exceeded", no failing
      # input). That is not a finding: run the target once more. A real
      # failure always writes its input to testdata/fuzz.
      if grep -q 'context deadline exceeded' /tmp/mailbrake-fuzz.log && ! grep -q 'Failing input written' /tmp/mailbrake-fuzz.log &&
        go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/mailbrake-fuzz.log 2>&1; then
        echo "  (passed on a second run after the fuzzing engine missed its deadline)"
        continue
      fi
      cat /tmp/mailbrake-fuzz.log
      status=1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
exit $status

#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed time each, one after
# another (go test -fuzz takes one target in one package at a time), prints
# the time each took, and fails if any target finds a failing input. The
# seed corpora in */testdata/fuzz/ also run as ordinary tests in `make test`.
#
#   FUZZTIME      time per target (default 10s; any -fuzztime value)
#   FUZZPARALLEL  fuzzing workers per target (default: GOMAXPROCS)
#   FUZZMINIMIZE  time to minimise each new input (default 5s; go's own
#                 default of 60s leaves targets with large inputs, such as
#                 saved graphs, mostly minimising instead of fuzzing)
#   FUZZ_ONLY     regexp: run only targets whose package/name matches
#
# A failing input is written to the package's testdata/fuzz/FuzzName/ by go
# test; commit it with the fix as a regression seed.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"
FUZZMINIMIZE="${FUZZMINIMIZE:-5s}"
par=()
[ -n "${FUZZPARALLEL:-}" ] && par=(-parallel "$FUZZPARALLEL")

# Targets are found, not listed, so a new one is never left out.
mapfile -t targets < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' cmd internal |
  while read -r f; do
    for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' "$f" | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); do
      echo "./$(dirname "$f") $name"
    done
  done | sort)
if [ -n "${FUZZ_ONLY:-}" ]; then
  mapfile -t targets < <(printf '%s\n' "${targets[@]}" | grep -E -- "$FUZZ_ONLY")
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets found" >&2; exit 1; }

failed=()
summary=()
start=$SECONDS
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "=== fuzz $pkg $name for $FUZZTIME" >&2
  t0=$SECONDS
  log="$(mktemp)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" "${par[@]}" "$pkg" 2>&1 | tee "$log" >&2
  rc=${PIPESTATUS[0]}
  execs="$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')"
  line="$(printf '%-22s %-20s %4ds  %10s execs' "$pkg" "$name" $((SECONDS - t0)) "${execs:-?}")"
  if [ "$rc" -ne 0 ]; then
    # Go before 1.27 can fail a target with a bare "context deadline
    # exceeded" when -fuzztime ends while a worker is mid-input
    # (golang/go#75804); that is no finding: no input was written.
    if [ "$(grep -c -- '--- FAIL' "$log")" -eq 1 ] && grep -qx '    context deadline exceeded' "$log" &&
      ! grep -q 'Failing input written' "$log"; then
      line+="  (ignored go#75804 stop race)"
    else
      failed+=("$pkg $name")
      line+="  FAILED"
    fi
  fi
  rm -f "$log"
  summary+=("$line")
done

echo >&2
printf '%s\n' "${summary[@]}" >&2
echo "fuzz: ${#targets[@]} targets, $((SECONDS - start))s in all" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (failing inputs are in the packages' testdata/fuzz/)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Run every test binary in DIR (default build/tests), add up PASS / FAIL / SKIP lines, print
# "N passed, N failed, N skipped" last and exit non-zero on any failure. A binary that crashes or
# exits non-zero without a FAIL line counts as one failure.
dir=${1:-build/tests}
pass=0 fail=0 skip=0
shopt -s nullglob
for t in "$dir"/*_test; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^(PASS|FAIL|SKIP) ' | sed 's/^/   /'
  printf '%s\n' "$out" | grep -vE '^(PASS|FAIL|SKIP) ' | grep -iE 'error|warning' | head -5 | sed 's/^/   | /'
  p=$(printf '%s\n' "$out" | grep -c '^PASS ')
  f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
  s=$(printf '%s\n' "$out" | grep -c '^SKIP ')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "   FAIL $name: exited with status $rc"
    printf '%s\n' "$out" | tail -5 | sed 's/^/   | /'
    f=1
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

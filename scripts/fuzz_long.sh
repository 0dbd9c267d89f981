#!/usr/bin/env bash
# A long fuzzing campaign: every target (or the named ones) in turn for SECONDS each, one at a
# time, at the lowest CPU priority; after each, what it found is folded into the committed
# corpus (fuzz/corpus/T) by libFuzzer's merge (only inputs that add coverage, the seeds keep
# their names): commit that corpus afterwards.
#
#   bash scripts/fuzz_long.sh [SECONDS_PER_TARGET] [TARGET...]     (make fuzz-long)
#
# Resumable: libFuzzer's working corpus (fuzz/work/T) persists between runs, and the campaign
# records each finished target in fuzz/work/long-campaign; re-running skips those and goes on
# with the next (an interrupted target starts again from its grown working corpus). When
# every target is done the record is cleared, so the next run starts a new campaign.
# Executions per target are appended to fuzz/work/long-summary.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-3600}"
shift || true
state="$root/fuzz/work/long-campaign"
summary="$root/fuzz/work/long-summary.txt"
mkdir -p "$root/fuzz/work"
touch "$state"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$root/fuzz/Cargo.toml" | grep -v '^mcp-auth-filter-fuzz$')
fi

for t in "${targets[@]}"; do
  if grep -qx "$t" "$state"; then
    echo "fuzz_long.sh: $t already done in this campaign" >&2
    continue
  fi
  out="$root/fuzz/work/$t.long.out"
  rc=0
  FUZZ_CMIN=1 nice -n 19 bash "$root/scripts/fuzz.sh" "$secs" "$t" >"$out" || rc=$?
  { grep -E '^  ' "$out" || true; } | sed "s/^/$(date -u +%FT%TZ) ${secs}s /" >>"$summary"
  if [ "$rc" -ne 0 ]; then
    cat "$out"
    echo "fuzz_long.sh: $t failed (see above and fuzz/work/$t.log); re-run to resume" >&2
    exit 1
  fi
  echo "$t" >>"$state"
done
: >"$state"
echo "fuzz_long.sh: campaign complete; executions in $summary; commit fuzz/corpus" >&2
tail -n "${#targets[@]}" "$summary"

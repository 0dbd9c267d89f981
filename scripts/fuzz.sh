#!/usr/bin/env bash
# Fuzzes the filter's pure logic with cargo fuzz (libFuzzer), a fixed time per target.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET  default 20 (CI uses ~10-15)
#   TARGET...           default: every target in fuzz/Cargo.toml
#
# Installs cargo-fuzz if `cargo fuzz` is missing (pinned, ~45 s to build). Builds with the
# nightly toolchain when rustup has one, else with the stable one and RUSTC_BOOTSTRAP=1
# (cargo fuzz needs -Z flags). Each target starts from its committed seeds (fuzz/corpus/T)
# plus the inputs of past findings (fuzz/regressions/T); what it discovers goes to the
# ignored fuzz/work/T, which later runs reuse. Prints each target's executions and exits
# non-zero on any crash, timeout or out-of-memory, printing the reproducer's path. The closing
# lines repeat each failure's panic message and reproducer (as base64 when small): CI shows
# only the end of the output.
# rsa_verify (big-number arithmetic) is built a second time, into fuzz/target/arith, without
# ASan and comparison tracing: about four times the executions.
#
# Environment: FUZZ_SANITIZER (address|none, default address), FUZZ_RSS_MB (default 2048),
# FUZZ_TIMEOUT (seconds for one input, default 10), FUZZ_ARGS (more libFuzzer flags),
# FUZZ_CMIN=1 (after a clean run, merge fuzz/work/T into the committed fuzz/corpus/T: only
# inputs that add coverage; what scripts/fuzz_long.sh does).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
secs="${1:-20}"
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "fuzz.sh: SECONDS_PER_TARGET must be a positive integer, got '$secs'" >&2
  exit 2
fi

log() { echo "fuzz.sh: $*" >&2; }

# The toolchain: nightly if rustup has it, else stable with RUSTC_BOOTSTRAP=1.
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  log "no nightly toolchain: using the default one with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi

if ! cargo "${toolchain[@]}" fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  start=$SECONDS
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
  log "cargo-fuzz installed in $((SECONDS - start)) s"
fi

cd "$fuzz"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

sanitizer="${FUZZ_SANITIZER:-address}"
# Big-number targets spend most of their time in arithmetic, which comparison tracing and
# ASan slow down about fourfold; they get their own build without either.
ARITH_TARGETS=" rsa_verify "
is_arith() { [[ "$ARITH_TARGETS" == *" $1 "* ]]; }
flags_for() {
  if is_arith "$1"; then
    echo "--sanitizer none --no-trace-compares --target-dir $fuzz/target/arith"
  else
    echo "--sanitizer $sanitizer"
  fi
}

start=$SECONDS
normal=()
arith=()
for t in "${targets[@]}"; do
  if is_arith "$t"; then arith+=("$t"); else normal+=("$t"); fi
done
log "building ${#targets[@]} targets (sanitizer: $sanitizer; ${arith[*]:-no target} without it)"
if [ "${#normal[@]}" -gt 0 ]; then
  # `cargo fuzz build` takes one target or none (all).
  one=()
  [ "${#normal[@]}" -eq 1 ] && one=("${normal[0]}")
  cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer" "${one[@]}" >&2
fi
for t in "${arith[@]}"; do
  # shellcheck disable=SC2046
  cargo "${toolchain[@]}" fuzz build $(flags_for "$t") "$t" >&2
done
log "built in $((SECONDS - start)) s"

# Dictionaries: JWS pieces for raw tokens, JSON words for the JSON parsers.
dict_for() {
  case "$1" in
    token_validate) echo "$fuzz/dict/jws.dict" ;;
    jwks_parse | config_parse | mcp_judge) echo "$fuzz/dict/json.dict" ;;
    list_rewrite) echo "$fuzz/dict/sse.dict" ;;
    *) echo "" ;;
  esac
}

declare -A execs speed status why
failed=0
for t in "${targets[@]}"; do
  work="$fuzz/work/$t"
  mkdir -p "$work" "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
  corpora=("$work" "$fuzz/corpus/$t")
  [ -d "$fuzz/regressions/$t" ] && corpora+=("$fuzz/regressions/$t")
  args=(-max_total_time="$secs" -print_final_stats=1 -timeout="${FUZZ_TIMEOUT:-10}"
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}")
  dict="$(dict_for "$t")"
  [ -n "$dict" ] && args+=(-dict="$dict")
  # shellcheck disable=SC2206
  [ -n "${FUZZ_ARGS:-}" ] && args+=(${FUZZ_ARGS})
  out="$fuzz/work/$t.log"
  log "running $t for ${secs} s"
  set +e
  # shellcheck disable=SC2046
  cargo "${toolchain[@]}" fuzz run $(flags_for "$t") "$t" "${corpora[@]}" -- "${args[@]}" >"$out" 2>&1
  rc=$?
  set -e
  execs[$t]="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)"
  speed[$t]="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)"
  if [ "$rc" -eq 0 ]; then
    status[$t]=ok
    grep -E '^(#[0-9]+.*DONE|stat::)' "$out" | sed "s/^/  $t: /" >&2 || true
    if [ "${FUZZ_CMIN:-0}" = 1 ]; then
      before=$(find "$fuzz/corpus/$t" -type f | wc -l)
      # libFuzzer's merge: only the inputs of work/T that add coverage join corpus/T, and the
      # committed seeds keep their names (`cargo fuzz cmin` would rename them by hash, and
      # src/lib.rs reads one by name).
      # shellcheck disable=SC2046
      cargo "${toolchain[@]}" fuzz run $(flags_for "$t") "$t" "$fuzz/corpus/$t" "$work" \
        -- -merge=1 -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" >"$fuzz/work/$t.merge.log" 2>&1 \
        || { log "merge of $t failed: $fuzz/work/$t.merge.log"; failed=1; }
      log "$t corpus: $before files before, $(find "$fuzz/corpus/$t" -type f | wc -l) after the merge"
    fi
  else
    status[$t]=FAILED
    failed=1
    echo "---- $t failed (exit $rc); the end of its log ($out):" >&2
    tail -n 60 "$out" >&2
    artifact="$(sed -n 's/.*[Tt]est unit written to \(.*\)$/\1/p' "$out" | tail -1)"
    # Kept for the closing lines: CI shows only the end of the output.
    why[$t]="$( (grep -m1 -E 'panicked at|^==[0-9]+==ERROR|ERROR: libFuzzer' "$out" || echo "exit $rc") | cut -c1-300)"
    # A panic's message follows its location line (an assert_eq adds left and right).
    while IFS= read -r line; do
      why[$t]+=$'\n      '"${line:0:300}"
    done < <(grep -m1 -A3 'panicked at' "$out" | sed -n '2,4p' | grep -v '^stack backtrace' || true)
    if [ -n "$artifact" ]; then
      why[$t]+=$'\n      reproducer: '"$artifact"
      if [ -f "$artifact" ] && [ "$(stat -c %s "$artifact")" -le 2048 ]; then
        why[$t]+=$'\n      reproducer as base64 (base64 -d > file): '"$(base64 -w0 "$artifact")"
      fi
      echo "---- reproducer: $artifact" >&2
      echo "     replay:   (cd fuzz && cargo ${toolchain[*]} fuzz run $(flags_for "$t") $t $artifact)" >&2
      echo "     minimise: (cd fuzz && cargo ${toolchain[*]} fuzz tmin $(flags_for "$t") $t $artifact)" >&2
    fi
  fi
done

for t in "${targets[@]}"; do
  if [ -n "${why[$t]:-}" ]; then printf 'fuzz: %s failed: %s\n' "$t" "${why[$t]}"; fi
done
echo "fuzz summary (${secs} s per target):"
for t in "${targets[@]}"; do
  printf '  %-22s %-6s executions=%s exec/s=%s\n' "$t" "${status[$t]}" "${execs[$t]:-?}" "${speed[$t]:-?}"
done
bad=0
for t in "${targets[@]}"; do [ "${status[$t]}" = ok ] || bad=$((bad + 1)); done
# The closing line in the plain "N passed, N failed" form that CI reads.
echo "fuzz: $(( ${#targets[@]} - bad )) passed, $bad failed"
[ "$failed" -eq 0 ] || exit 1

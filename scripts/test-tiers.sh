#!/usr/bin/env bash
# Runs test tiers (folders under tests/) as separate pytest sessions and names each tier that
# fails. Usage: scripts/test-tiers.sh LANE [LANE …], a lane being tiers joined by commas
# ("integration,durable,e2e"): the lanes run side by side, the tiers of one lane one after the
# other. Every tier starts what it needs on free ports (its own broker and server), so lanes do
# not collide. The first lane prints as it goes; the others write .cache/test-logs/<tier>.log,
# printed whole at the end; each tier lists its ten slowest tests. Exit 1 when any tier failed,
# or collected no test (pytest's exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=${PYTEST:-.venv/bin/pytest}
logs=.cache/test-logs
mkdir -p "$logs"
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

run_tier() {  # tier, streamed (1) or logged (0)
  local tier=$1 streamed=$2 started rc
  started=$(date +%s)
  if [[ $streamed == 1 ]]; then
    echo "== tier $tier: pytest tests/$tier"
    "$PYTEST" "tests/$tier" -p no:cacheprovider --durations=10; rc=$?
  else
    "$PYTEST" "tests/$tier" -p no:cacheprovider --durations=10 >"$logs/$tier.log" 2>&1; rc=$?
  fi
  echo "$rc $(( $(date +%s) - started ))" >"$results/$tier"
  [[ $streamed == 1 ]] && echo "== tier $tier: exit $rc in $(( $(date +%s) - started ))s"
}

run_lane() {  # comma-separated tiers, streamed?
  local tier
  IFS=, read -ra tiers <<<"$1"
  for tier in "${tiers[@]}"; do run_tier "$tier" "$2"; done
}

pids=()
first=1
for lane in "$@"; do
  if [[ $first == 1 ]]; then first=0; continue; fi
  run_lane "$lane" 0 &
  pids+=($!)
done
run_lane "$1" 1
for pid in "${pids[@]}"; do wait "$pid"; done
for lane in "${@:2}"; do
  IFS=, read -ra tiers <<<"$lane"
  for tier in "${tiers[@]}"; do
    echo "== tier $tier (ran beside the others): pytest tests/$tier"
    cat "$logs/$tier.log"
  done
done

failed=()
echo "== tiers:"
for lane in "$@"; do
  IFS=, read -ra tiers <<<"$lane"
  for tier in "${tiers[@]}"; do
    read -r rc seconds <"$results/$tier" || { rc=missing; seconds=0; }
    case $rc in
      0) verdict=passed ;;
      5) verdict="FAILED (no test collected)" ;;
      *) verdict="FAILED (pytest exit $rc)" ;;
    esac
    printf '   %-12s %-28s %5ss\n' "$tier" "$verdict" "$seconds"
    [[ $rc == 0 ]] || failed+=("$tier")
  done
done
if (( ${#failed[@]} )); then
  echo "make test: failed tier(s): ${failed[*]} (rerun one with: make test-<tier>)"
  exit 1
fi
echo "make test: every tier passed"

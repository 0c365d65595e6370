#!/usr/bin/env bash
# `make test` BUSY_RUNS times (default 5) while two CPU-bound processes run beside it, as on a
# shared CI runner or a developer's machine: the suite must stay green when the machine is slow.
# Prints each run's duration and result; exits non-zero if any run failed. The burners are
# stopped on every exit (normal end, failure, Ctrl-C).
set -u

runs="${BUSY_RUNS:-5}"
make_cmd="${MAKE:-make}"
burners=()

stop_burners() {
    if [ "${#burners[@]}" -gt 0 ]; then
        kill "${burners[@]}" 2>/dev/null
        wait "${burners[@]}" 2>/dev/null
        burners=()
    fi
}
trap stop_burners EXIT
trap 'exit 130' INT TERM

for _ in 1 2; do
    python3 -c 'while True: pass' &
    burners+=("$!")
done
echo "busy: burners ${burners[*]} running; ${runs} run(s) of make test"

failed=0
total_start=$(date +%s)
for run in $(seq 1 "$runs"); do
    start=$(date +%s)
    if "$make_cmd" test; then
        result=passed
    else
        result=FAILED
        failed=$((failed + 1))
    fi
    echo "busy: run ${run}/${runs} ${result} in $(( $(date +%s) - start )) s"
done
echo "busy: ${failed} of ${runs} run(s) failed; $(( $(date +%s) - total_start )) s in all"
[ "$failed" -eq 0 ]

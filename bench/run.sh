#!/usr/bin/env bash
# Runs the peer benchmarks interleaved and prints a benchstat table of
# medians. Raw output and the table go to bench/results/ (gitignored).
#
#   bench/run.sh                      # 6 rounds of everything, 1 s per row
#   COUNT=10 BENCH=Happy bench/run.sh # 10 rounds of the happy path only
#
# Each round runs every benchmark once (-count=1), so a burst of noise on
# the shared machine hits all libraries alike instead of one library's
# whole sample.
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
BENCH=${BENCH:-.}
TAGS=${TAGS:-}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

results=$PWD/results
mkdir -p "$results/bin"
GOBIN=$results/bin go install "$BENCHSTAT"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw=$results/$stamp.txt
table=$results/$stamp.benchstat.txt
bin=$results/bench.test
go test -c -o "$bin" ${TAGS:+-tags "$TAGS"} .

{
	echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "# $(go version)"
	echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
	echo "# command: COUNT=$COUNT BENCHTIME=$BENCHTIME BENCH='$BENCH' TAGS='$TAGS' bench/run.sh"
} | tee "$results/$stamp.meta"

for i in $(seq "$COUNT"); do
	echo "== round $i/$COUNT" >&2
	"$bin" -test.run '^$' -test.bench "$BENCH" -test.benchmem \
		-test.benchtime "$BENCHTIME" -test.count 1 >>"$raw"
done

# One column per library, one row per benchmark: medians with their
# confidence intervals, and each library against the first column.
"$results/bin/benchstat" -col /lib "$raw" | tee "$table"
echo "raw: $raw" >&2
echo "table: $table" >&2

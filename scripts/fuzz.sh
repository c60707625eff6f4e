#!/usr/bin/env bash
# Runs every fuzz target of the root module, one at a time, for FUZZTIME
# each (default 20s), and prints the execs each target managed. Fuzzing is
# not part of `go test`'s default run, which only replays the seed corpora.
#
#   scripts/fuzz.sh              # every target
#   FUZZTIME=2m scripts/fuzz.sh 'Policy$'   # targets matching a regexp
#
# A target that fails leaves its reproducer in the package's
# testdata/fuzz/<Target>/; `go test -run <Target>/<file> <pkg>` replays it.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
filter=${1:-.}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")

# `go test -list` prints a package's matching names, then its "ok" line.
targets=()
pending=()
while IFS= read -r line; do
	case $line in
	Fuzz*) pending+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for name in ${pending[@]+"${pending[@]}"}; do
			targets+=("$pkg $name")
		done
		pending=()
		;;
	esac
done < <(go test -list '^Fuzz' ./...)

failed=0
summary=()
for t in ${targets[@]+"${targets[@]}"}; do
	read -r pkg name <<<"$t"
	grep -Eq -- "$filter" <<<"$name" || continue
	log="$logdir/${pkg//\//_}.$name.log"
	echo "== $name ($pkg), $fuzztime"
	result=ok
	if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
		result=FAIL
		failed=1
		tail -n 30 "$log"
	fi
	# Progress lines: "fuzz: elapsed: 20s, execs: 123456 (6172/sec), new interesting: ..."
	last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	# The last line's own rate covers only its last instant: average over
	# the elapsed time instead ("45s", "1m5s").
	rate=$(sed -nE 's/^fuzz: elapsed: ([0-9hms]+),.*/\1/p' <<<"$last" |
		awk -v n="${execs:-0}" '{
			s = 0; t = $0
			if (match(t, /[0-9]+h/)) s += 3600 * substr(t, RSTART, RLENGTH - 1)
			if (match(t, /[0-9]+m/)) s += 60 * substr(t, RSTART, RLENGTH - 1)
			if (match(t, /[0-9]+s/)) s += substr(t, RSTART, RLENGTH - 1)
			if (s > 0) printf "%d", n / s
		}')
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	summary+=("$(printf '%-28s %-48s %12s %9s %6s  %s' "$name" "$pkg" "${execs:-?}" "${rate:-?}" "${interesting:-?}" "$result")")
done

echo
printf '%-28s %-48s %12s %9s %6s  %s\n' target package execs execs/s new result
for s in ${summary[@]+"${summary[@]}"}; do
	echo "$s"
done
echo "logs: $logdir"
exit "$failed"

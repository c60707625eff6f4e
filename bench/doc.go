// Package bench compares resilient with its peers, side by side in one run:
// failsafe-go (failsafehttp), hashicorp/go-retryablehttp and gojek/heimdall.
// It is its own module so that the peers never enter resilient's go.mod.
//
// Everything lives in _test.go files; run.sh runs the benchmarks and
// prints a benchstat table. README.md says how each library is configured
// and where the configurations cannot be made equal.
package bench

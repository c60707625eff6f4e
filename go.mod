module github.com/resilient-go/resilient

go 1.26.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
	go.uber.org/goleak v1.3.0
)

require github.com/cespare/xxhash/v2 v2.3.0 // indirect

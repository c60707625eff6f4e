package resilient_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// A config file drives the standard pipeline. Unknown fields are refused,
// so a misspelt name is an error rather than a silent default; a value out
// of range is an error naming the field.
func ExampleConfig() {
	const file = `{
		"attempt_timeout": "2s",
		"total_timeout": "10s",
		"retry": {"max_attempts": 2, "initial_delay": "10ms", "max_delay": "50ms"},
		"breaker": {"consecutive_failures": 2, "open_timeout": "30s"}
	}`
	var cfg resilient.Config
	dec := json.NewDecoder(strings.NewReader(file))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		fmt.Println(err)
		return
	}
	opts, err := cfg.Options()
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := resilienttest.StartServer(resilienttest.Status(http.StatusServiceUnavailable))
	defer srv.Close()
	client := &http.Client{Transport: resilient.NewTransport(srv.Client().Transport, opts...)}

	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		fmt.Println(resp.StatusCode, "after", srv.Count(), "attempts")
	}
	_, err = client.Get(srv.URL)
	fmt.Println(strings.Contains(err.Error(), "circuit open"), "after", srv.Count(), "attempts")

	bad := resilient.Config{Retry: &resilient.RetryConfig{MaxAttempts: -2}}
	_, err = bad.Options()
	fmt.Println(err)
	// Output:
	// 503 after 2 attempts
	// true after 2 attempts
	// resilient: config retry.max_attempts: must not be negative, got -2
}

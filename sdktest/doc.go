// Package sdktest runs real SDK clients (AWS SDK for Go v2, stripe-go,
// go-github, openai-go, go-elasticsearch, client-go) over resilient's
// standard pipeline against fake servers on 127.0.0.1, to show what each
// SDK does with bodies, idempotency keys, retries and our errors.
//
// It is its own module so that the SDKs never enter the root go.mod. It has
// no non-test code; README.md in this directory holds the findings.
package sdktest

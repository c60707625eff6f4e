package resilient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// ExampleTracing traces each attempt as a CLIENT span and sends its trace
// context to the server. Production code usually installs the SDK
// globally (otel.SetTracerProvider) and leaves TracingPolicy zero.
func ExampleTracing() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	srv := resilienttest.StartServer()
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil, resilient.Tracing(resilient.TracingPolicy{
		TracerProvider: tp,
		Propagator:     propagation.TraceContext{},
	}))}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/hello?sig=secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close() // ends the span

	for _, r := range srv.Requests() {
		fmt.Println("server got a traceparent:", r.Header.Get("Traceparent") != "")
	}

	for _, s := range rec.Ended() {
		fmt.Println("span:", s.Name(), s.SpanKind())
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "http.response.status_code":
				fmt.Println("status:", kv.Value.AsInt64())
			case "url.full":
				fmt.Println("url redacted:", kv.Value.AsString() == srv.URL+"/hello?sig=REDACTED")
			}
		}
	}
	// Output:
	// server got a traceparent: true
	// span: GET client
	// url redacted: true
	// status: 200
}

package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// The fault matrix: every fault below against every kind of request, each
// cell through the standard pipeline over real TCP, with its expected
// outcome written down and checked (see cell.run for everything a cell
// checks).

// The standard pipeline of every cell: timeouts short enough that a failing
// cell ends fast, three attempts, next to no backoff.
const (
	attemptTimeout = 300 * time.Millisecond
	totalTimeout   = 2 * time.Second
	// guard is the caller's own deadline. It is far past totalTimeout: it is
	// only there so that a pipeline that does not bound a call cannot hang
	// the test.
	guard = 10 * time.Second
)

var retryPolicy = resilient.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// A reqKind is one kind of call a client makes.
type reqKind struct {
	name      string
	method    string
	callerKey bool // the caller sets Idempotency-Key
	stageOff  bool // the pipeline's IdempotencyKey stage is switched off
	body      bodyKind
}

type bodyKind int

const (
	noBody     bodyKind = iota
	rewindable          // GetBody is set: the body can be sent again
	streaming           // no GetBody: the body can be sent once
)

var reqKinds = []reqKind{
	{name: "GET", method: http.MethodGet},
	{name: "POST_key", method: http.MethodPost, callerKey: true, body: rewindable},
	// The caller sets no key; the pipeline's IdempotencyKey stage adds one.
	{name: "POST_autokey", method: http.MethodPost, body: rewindable},
	// No key anywhere: a POST that must never arrive twice.
	{name: "POST_nokey", method: http.MethodPost, stageOff: true, body: rewindable},
	// A key, but a body that cannot be rewound: sent once, never re-sent empty.
	{name: "POST_key_stream", method: http.MethodPost, callerKey: true, body: streaming},
}

// keyed reports whether the request carries an idempotency key when sent.
func (k reqKind) keyed() bool {
	return k.callerKey || (k.method == http.MethodPost && !k.stageOff)
}

// replayable reports whether the pipeline may send the request more than
// once.
func (k reqKind) replayable() bool {
	return k.body != streaming && (k.method == http.MethodGet || k.keyed())
}

// An outcome is what a cell must see.
type outcome struct {
	// status is the response's status code; 0 means the call fails.
	status int
	// err is the class of the call's error when status is 0, else of the
	// body read's error; none means the body reads completely.
	err errClass
	// body is the complete response body: what a complete read returns, and
	// what a failed read must return a strict prefix of.
	body string
	// attempts is how many times the pipeline called the base transport.
	attempts int
	// arrivals is how many requests the server received.
	arrivals int
	// handshakes, for a TLS target, is how many TLS handshakes it saw begin.
	handshakes int
	// atLeast and atMost bound how long the call took to return (0: no
	// bound). They are far from the expected time: a Retry-After honoured
	// takes at least its second; one ignored or not waited for returns far
	// sooner than the one-second wait or the two-second total timeout.
	atLeast, atMost time.Duration
}

// A fault is one row of the matrix: a target with the fault, and the
// outcomes for the requests the pipeline may replay (GET, POST with a key,
// the caller's or the pipeline's) and for those it must send at most once
// (POST without a key, a body without GetBody).
type fault struct {
	name       string
	start      startTarget
	replayable outcome
	once       outcome
	// keepsConns says the server never ends a connection: the client must
	// close none before CloseIdleConnections. One closed means a discarded
	// response was not drained, or the pool was flushed.
	keepsConns bool
}

// Bodies the servers answer with.
var (
	respBody = string(payload("response", 16<<10))
	// slowBody takes 600 ms at the slow-body fault's 8 KB/s: past the
	// attempt timeout, with its first bytes well before it.
	slowBody = string(payload("slow response", 4800))
)

// Status texts, as resilienttest answers with them.
var (
	text429 = http.StatusText(http.StatusTooManyRequests)
	text500 = http.StatusText(http.StatusInternalServerError)
	text502 = http.StatusText(http.StatusBadGateway)
)

// fast bounds a call that must not wait a Retry-After: well under the
// one-second wait and the two-second total timeout.
const fast = 900 * time.Millisecond

func faults() []fault {
	okBody := resilienttest.Respond(http.StatusOK, respBody)
	sliced := map[string]any{"average_size": 256, "size_variation": 128, "delay": 100} // delay in µs
	return []fault{
		{
			name: "refused", start: refused,
			replayable: outcome{err: errRefused, attempts: 3},
			once:       outcome{err: errRefused, attempts: 1},
		},
		{
			name: "reset before headers", start: kit(resilienttest.ResetConn()),
			replayable: outcome{err: errReset, attempts: 3, arrivals: 3},
			once:       outcome{err: errReset, attempts: 1, arrivals: 1},
		},
		{
			// The response is out when the body breaks: nothing to retry.
			name: "reset mid-body", start: kit(resilienttest.ResetMidBody(1000), okBody),
			replayable: outcome{status: 200, err: errReset, body: respBody, attempts: 1, arrivals: 1},
			once:       outcome{status: 200, err: errReset, body: respBody, attempts: 1, arrivals: 1},
		},
		{
			name: "latency 30ms each way",
			start: toxicKit([]toxic{
				{"latency", "upstream", map[string]any{"latency": 30}},
				{"latency", "downstream", map[string]any{"latency": 30}},
			}, okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			once:       outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			name:       "latency 600ms",
			start:      toxicKit([]toxic{{"latency", "downstream", map[string]any{"latency": 600}}}, okBody),
			replayable: outcome{err: errTimeout, attempts: 3, arrivals: 3},
			once:       outcome{err: errTimeout, attempts: 1, arrivals: 1},
		},
		{
			// The timeout toxic swallows the request: the server never sees it.
			name:       "hang in proxy",
			start:      toxicKit([]toxic{{"timeout", "upstream", map[string]any{"timeout": 0}}}, okBody),
			replayable: outcome{err: errTimeout, attempts: 3},
			once:       outcome{err: errTimeout, attempts: 1},
		},
		{
			name: "hang in server", start: kit(resilienttest.Hang()),
			replayable: outcome{err: errTimeout, attempts: 3, arrivals: 3},
			once:       outcome{err: errTimeout, attempts: 1, arrivals: 1},
		},
		{
			// Headers in time, body past the attempt timeout: the read fails.
			name: "slow body",
			start: toxicKit([]toxic{{"bandwidth", "downstream", map[string]any{"rate": 8}}}, // KB/s
				resilienttest.Respond(http.StatusOK, slowBody)),
			replayable: outcome{status: 200, err: errTimeout, body: slowBody, attempts: 1, arrivals: 1},
			once:       outcome{status: 200, err: errTimeout, body: slowBody, attempts: 1, arrivals: 1},
		},
		{
			name:       "slicer",
			start:      toxicKit([]toxic{{"slicer", "upstream", sliced}, {"slicer", "downstream", sliced}}, okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			once:       outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			name: "502 then 200", start: kit(resilienttest.FailFirst(1, http.StatusBadGateway), okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 2, arrivals: 2},
			once:       outcome{status: 502, body: text502, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			// Retries run out: the last response, body intact.
			name: "500 always", start: kit(resilienttest.Status(http.StatusInternalServerError)),
			replayable: outcome{status: 500, body: text500, attempts: 3, arrivals: 3},
			once:       outcome{status: 500, body: text500, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			name: "429 Retry-After 1s then 200",
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.RetryAfter(time.Second), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atLeast: time.Second},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// Not a number, not a date: ignored, the backoff decides.
			name: "429 Retry-After garbage then 200",
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.Header("Retry-After", "soon, maybe"), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// Past MaxRetryAfter and the deadline: that response, at once.
			name: "429 Retry-After huge",
			start: kit(resilienttest.Header("Retry-After", "99999999999"),
				resilienttest.Status(http.StatusTooManyRequests)),
			replayable: outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			name: "429 Retry-After past date then 200",
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.RetryAfterDate(time.Now().Add(-time.Hour)), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			replayable: outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// A certificate error is permanent: never retried.
			name: "TLS untrusted cert", start: untrustedTLS,
			replayable: outcome{err: errCert, attempts: 1, handshakes: 1},
			once:       outcome{err: errCert, attempts: 1, handshakes: 1},
		},
		{
			name: "TLS reset in handshake", start: resetInHandshake,
			replayable: outcome{err: errReset, attempts: 3, handshakes: 3},
			once:       outcome{err: errReset, attempts: 1, handshakes: 1},
		},
	}
}

func TestFaultMatrix(t *testing.T) {
	for fi, f := range faults() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			for ki, k := range reqKinds {
				id := fmt.Sprintf("c%02d%d", fi, ki)
				t.Run(k.name, func(t *testing.T) {
					t.Parallel()
					runCell(t, id, f, k)
				})
			}
		})
	}
}

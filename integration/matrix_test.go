package integration

import (
	"flag"
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
	dedup     bool // the pipeline's key is for servers that deduplicate (IdempotencyPolicy.ServerDeduplicates)
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
	// The caller sets no key; the pipeline's IdempotencyKey stage adds one,
	// which the server may ignore.
	{name: "POST_autokey", method: http.MethodPost, body: rewindable},
	// The same without a body: nothing for the pipeline to take GetBody
	// from, yet net/http takes a body-less request with a key for one it
	// may replay by itself.
	{name: "POST_autokey_empty", method: http.MethodPost},
	// The pipeline's key, for servers said to deduplicate by it.
	{name: "POST_dedupkey", method: http.MethodPost, dedup: true, body: rewindable},
	// No key anywhere: a POST that must never arrive twice unless the first
	// copy never left.
	{name: "POST_nokey", method: http.MethodPost, stageOff: true, body: rewindable},
	// A key, but a body that cannot be rewound: sent once, never re-sent empty.
	{name: "POST_key_stream", method: http.MethodPost, callerKey: true, body: streaming},
}

// keyed reports whether the request carries an idempotency key when sent.
func (k reqKind) keyed() bool {
	return k.callerKey || (k.method == http.MethodPost && !k.stageOff)
}

// keyKind is what a request's key proves, as DESIGN.md "Retry safety" has it.
type keyKind int

const (
	noKey       keyKind = iota
	pipelineKey         // made by the pipeline for servers that may ignore it
	trustedKey          // set by the caller, or made for servers that deduplicate
)

func (k reqKind) key() keyKind {
	switch {
	case k.callerKey || (k.keyed() && k.dedup):
		return trustedKey
	case k.keyed():
		return pipelineKey
	}
	return noKey
}

// A failClass is how a fault leaves the call, in the classes of DESIGN.md
// "Retry safety", plus the two that no rule re-sends.
type failClass int

const (
	// answered: the call got its response (a success, or one whose body
	// then failed): nothing to re-send.
	answered failClass = iota
	// permanent: a failure another attempt cannot mend (an untrusted
	// certificate): never re-sent.
	permanent
	// notSent: the server cannot have acted (dial, refused, TLS handshake,
	// lost before the request was written whole): any method.
	notSent
	// declined: the server says it did not act (429, 503): idempotent
	// methods, and POST with any key.
	declined
	// ambiguous: the server may have acted (an attempt timeout or a reset
	// after the request was written, 408, 500, 502, 504): idempotent
	// methods, and POST only with a trusted key.
	ambiguous
)

func (c failClass) String() string {
	return [...]string{"answered", "permanent", "not sent", "declined", "ambiguous"}[c]
}

// mayResend is DESIGN.md's class table, written out here on its own so
// that the matrix checks the pipeline against the design rather than
// against itself: whether a request of kind k may be sent again after a
// failed attempt of class c. A body without GetBody is never sent twice.
func mayResend(k reqKind, c failClass) bool {
	if c == answered || c == permanent || k.body == streaming {
		return false
	}
	if k.method == http.MethodGet || c == notSent {
		return true
	}
	switch c {
	case declined:
		return k.key() != noKey
	case ambiguous:
		return k.key() == trustedKey
	}
	return false
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

// A fault is one row of the matrix: a target with the fault, the class of
// the attempts it fails, and the outcomes for the requests the class lets
// the pipeline send again (resent) and for the others (once). Which
// outcome a cell wants is mayResend's to say, not the pipeline's.
type fault struct {
	name   string
	start  startTarget
	class  failClass
	resent outcome // unused when the class re-sends nothing
	once   outcome
	// keepsConns says the server never ends a connection: the client must
	// close none before CloseIdleConnections. One closed means a discarded
	// response was not drained, or the pool was flushed.
	keepsConns bool
	// warm says the cell first sends one GET to warmPath straight to the
	// base transport, so that the call's first attempt goes out on a
	// reused keep-alive connection (the cell checks that it did).
	warm bool
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
			// Nothing reached a server: even a POST without a key goes again.
			name: "refused", start: refused, class: notSent,
			resent: outcome{err: errRefused, attempts: 3},
			once:   outcome{err: errRefused, attempts: 1},
		},
		{
			// The kit reads and records the whole request before it resets:
			// the server acted, then the (fresh) connection died.
			name: "reset before headers", start: kit(resilienttest.ResetConn()), class: ambiguous,
			resent: outcome{err: errReset, attempts: 3, arrivals: 3},
			once:   outcome{err: errReset, attempts: 1, arrivals: 1},
		},
		{
			// The same on a reused keep-alive connection, where net/http
			// re-sends a request it takes for replayable by itself, inside
			// one attempt: the first attempt arrives twice for the kinds the
			// rules let go again (GET, a trusted key), so 3 attempts are 4
			// arrivals; a POST with the pipeline's key must not be among
			// them (its attempts carry no GetBody), nor one without a key.
			name: "reset after the request on a reused conn", class: ambiguous, warm: true,
			start:  kit(resilienttest.OnPath(warmPath, okBody), resilienttest.ResetConn()),
			resent: outcome{err: errReset, attempts: 3, arrivals: 4},
			once:   outcome{err: errReset, attempts: 1, arrivals: 1},
		},
		{
			// The response is out when the body breaks: nothing to retry.
			name: "reset mid-body", start: kit(resilienttest.ResetMidBody(1000), okBody), class: answered,
			once: outcome{status: 200, err: errReset, body: respBody, attempts: 1, arrivals: 1},
		},
		{
			name: "latency 30ms each way", class: answered,
			start: toxicKit([]toxic{
				{"latency", "upstream", map[string]any{"latency": 30}},
				{"latency", "downstream", map[string]any{"latency": 30}},
			}, okBody),
			once:       outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			// The attempt times out after the request was written.
			name: "latency 600ms", class: ambiguous,
			start:  toxicKit([]toxic{{"latency", "downstream", map[string]any{"latency": 600}}}, okBody),
			resent: outcome{err: errTimeout, attempts: 3, arrivals: 3},
			once:   outcome{err: errTimeout, attempts: 1, arrivals: 1},
		},
		{
			// The timeout toxic swallows the request: the server never sees
			// it, but the client wrote it whole, so it cannot know that.
			name: "hang in proxy", class: ambiguous,
			start:  toxicKit([]toxic{{"timeout", "upstream", map[string]any{"timeout": 0}}}, okBody),
			resent: outcome{err: errTimeout, attempts: 3},
			once:   outcome{err: errTimeout, attempts: 1},
		},
		{
			name: "hang in server", start: kit(resilienttest.Hang()), class: ambiguous,
			resent: outcome{err: errTimeout, attempts: 3, arrivals: 3},
			once:   outcome{err: errTimeout, attempts: 1, arrivals: 1},
		},
		{
			// Headers in time, body past the attempt timeout: the read fails.
			name: "slow body", class: answered,
			start: toxicKit([]toxic{{"bandwidth", "downstream", map[string]any{"rate": 8}}}, // KB/s
				resilienttest.Respond(http.StatusOK, slowBody)),
			once: outcome{status: 200, err: errTimeout, body: slowBody, attempts: 1, arrivals: 1},
		},
		{
			name: "slicer", class: answered,
			start:      toxicKit([]toxic{{"slicer", "upstream", sliced}, {"slicer", "downstream", sliced}}, okBody),
			once:       outcome{status: 200, body: respBody, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			name: "502 then 200", start: kit(resilienttest.FailFirst(1, http.StatusBadGateway), okBody), class: ambiguous,
			resent:     outcome{status: 200, body: respBody, attempts: 2, arrivals: 2},
			once:       outcome{status: 502, body: text502, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			// Retries run out: the last response, body intact.
			name: "500 always", start: kit(resilienttest.Status(http.StatusInternalServerError)), class: ambiguous,
			resent:     outcome{status: 500, body: text500, attempts: 3, arrivals: 3},
			once:       outcome{status: 500, body: text500, attempts: 1, arrivals: 1},
			keepsConns: true,
		},
		{
			name: "429 Retry-After 1s then 200", class: declined,
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.RetryAfter(time.Second), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			resent:     outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atLeast: time.Second},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// Not a number, not a date: ignored, the backoff decides.
			name: "429 Retry-After garbage then 200", class: declined,
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.Header("Retry-After", "soon, maybe"), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			resent:     outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// Past MaxRetryAfter and the deadline: that response, at once,
			// though the class would let it go again.
			name: "429 Retry-After huge", class: declined,
			start: kit(resilienttest.Header("Retry-After", "99999999999"),
				resilienttest.Status(http.StatusTooManyRequests)),
			resent:     outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			name: "429 Retry-After past date then 200", class: declined,
			start: kit(resilienttest.OnRequests(1, 1,
				resilienttest.RetryAfterDate(time.Now().Add(-time.Hour)), resilienttest.Status(http.StatusTooManyRequests)), okBody),
			resent:     outcome{status: 200, body: respBody, attempts: 2, arrivals: 2, atMost: fast},
			once:       outcome{status: 429, body: text429, attempts: 1, arrivals: 1, atMost: fast},
			keepsConns: true,
		},
		{
			// A certificate error is permanent: never retried.
			name: "TLS untrusted cert", start: untrustedTLS, class: permanent,
			once: outcome{err: errCert, attempts: 1, handshakes: 1},
		},
		{
			// No request is written before the handshake ends: not sent.
			name: "TLS reset in handshake", start: resetInHandshake, class: notSent,
			resent: outcome{err: errReset, attempts: 3, handshakes: 3},
			once:   outcome{err: errReset, attempts: 1, handshakes: 1},
		},
	}
}

// disagreements are the cells where the code disagrees with DESIGN.md.
// Each keeps the design's expectation, is reported to the lead, and is
// skipped, with the reason, unless -matrix.disagreements is set. A cell
// leaves this list when the code is fixed.
var disagreements = map[string]string{}

var runDisagreements = flag.Bool("matrix.disagreements", false,
	"also run the fault matrix's cells where the code disagrees with DESIGN.md (they fail)")

func TestFaultMatrix(t *testing.T) {
	for fi, f := range faults() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			for ki, k := range reqKinds {
				id := fmt.Sprintf("c%02d%d", fi, ki)
				t.Run(k.name, func(t *testing.T) {
					if why, ok := disagreements[f.name+"/"+k.name]; ok && !*runDisagreements {
						t.Skip("the code disagrees with DESIGN.md (reported): " + why)
					}
					t.Parallel()
					runCell(t, id, f, k)
				})
			}
		})
	}
}

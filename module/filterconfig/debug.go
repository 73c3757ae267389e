package filterconfig

// DebugBuildTag is the build tag of the test library: only a library built
// with it (make test's dist/test/libinferencepool.so) accepts the "debug"
// object and injects what it asks for. The production build (make build)
// refuses a config that carries one.
const DebugBuildTag = "inferencepool_debug"

// Debug is the test-only "debug" object any filter_config may carry in the
// test build. It lets tests drive failure and async paths through the real
// library.
type Debug struct {
	// PanicIn names a hook that panics on every stream: request_headers,
	// request_body, response_headers or response_body; or "scheduled", the
	// callback of asyncRequestHeaders; or "gossip", the gossip receiver of
	// the process (scrape.fleet.gossip), on every datagram that starts
	// with "PANIC"; or "probe", the callback of every pick-time probe of
	// the process (on the collector's goroutine).
	PanicIn string `json:"panicIn"`
	// AsyncRequestHeaders holds each request in its headers hook until a
	// goroutine has scheduled work back onto the stream's worker thread.
	AsyncRequestHeaders bool `json:"asyncRequestHeaders"`
	// BatchProbe runs, before each request headers hook, one abi.Batch of
	// every kind of op (some of them failing in Envoy, one value longer
	// than a batch's first room) and writes what it read and each op's
	// result into dynamic metadata (namespace inferencepool.batch_probe),
	// so a test sees through the ABI host what a batch did.
	BatchProbe bool `json:"batchProbe"`
	// SeedFilterState sets these filter state entries (through the SDK)
	// before each request headers hook, so a test can make a filter's own
	// set of one of them refused (Envoy keeps a first value read-only).
	SeedFilterState map[string]string `json:"seedFilterState"`
}

// Enabled reports whether any debug behaviour is on.
func (d Debug) Enabled() bool {
	return d.PanicIn != "" || d.AsyncRequestHeaders || d.BatchProbe || len(d.SeedFilterState) > 0
}

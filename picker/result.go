package picker

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
)

// Status is the outcome of a Pick.
type Status int

const (
	// StatusOK: Endpoints() is the list to send, best first.
	StatusOK Status = iota
	// StatusShed: everything is saturated and the request is sheddable
	// (priority < 0). Reply 429.
	StatusShed
	// StatusNoCapacity: the subset hint was empty or matched no endpoint of
	// the pool. Reply 503.
	StatusNoCapacity
	// StatusNoMetrics: no endpoint in scope has usable metrics (none scraped
	// yet, all failing, or an empty endpoint set). With fail-open pass the
	// request on without a destination (Envoy's fallback policy picks); with
	// fail-close reply 503. Pool.FailOpen says which. (With a subset hint a
	// fail-open pool never returns it: it picks inside the hint, blind.)
	StatusNoMetrics
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusShed:
		return "shed"
	case StatusNoCapacity:
		return "no-capacity"
	case StatusNoMetrics:
		return "no-metrics"
	}
	return "unknown"
}

// Outcome is how a request ended, reported with Result.Done.
type Outcome int

const (
	// OutcomeOK: the endpoint answered (any status below 500, including
	// 429), or the client went away.
	OutcomeOK Outcome = iota
	// OutcomeFailed: a 5xx, a reset or a connect failure. The endpoint is
	// taken out of the running for the pool's failurePenalty.
	OutcomeFailed
)

// maxListed bounds the endpoint list kept inline in a Result; the
// configuration allows at most 16.
const maxListed = 16

// Result is the answer to one Pick and the handle for the rest of the
// request's life: Served when the upstream answered, Done at stream end.
// Keep one per stream (a field of the stream's filter is ideal) and pass it
// to Pick by pointer; its zero value is ready and reusing it costs nothing.
type Result struct {
	Status Status

	eps     [maxListed]string
	n       int
	members [maxListed]int32
	started *collector.Target // where the in-flight count was added
	pool    *Pool
}

// Endpoints returns the picked endpoints, best first, when Status is OK.
func (r *Result) Endpoints() []string { return r.eps[:r.n] }

// AppendHeader appends the x-gateway-destination-endpoint value
// ("ip:port,ip:port,...") to dst.
func (r *Result) AppendHeader(dst []byte) []byte {
	for i, e := range r.eps[:r.n] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return dst
}

// Header returns the x-gateway-destination-endpoint value. It allocates;
// AppendHeader does not.
func (r *Result) Header() string { return string(r.AppendHeader(nil)) }

// Served records the endpoint that actually served the request (from
// envoy.lb / x-gateway-destination-endpoint-served or the upstream address)
// when it differs from the first one picked, i.e. Envoy retried: the
// in-flight count moves there, and every endpoint listed before it is
// penalized, since Envoy only walks past an entry that failed (connect
// failure, reset or a retriable 5xx). Unknown addresses are ignored.
func (r *Result) Served(addr string) {
	if r.started == nil || addr == r.started.Addr {
		return
	}
	v := r.pool.view.Load()
	i, ok := v.byAddr[addr]
	if !ok {
		return
	}
	for _, e := range r.eps[:r.n] {
		if e == addr {
			break
		}
		if j, ok := v.byAddr[e]; ok {
			v.members[j].target.Fail()
		}
	}
	t := v.members[i].target
	r.started.Move(t)
	r.started = t
}

// Done ends the request: the in-flight count drops, and OutcomeFailed
// penalizes the endpoint that served it. Calling Done again, or after a
// Pick that did not return StatusOK, does nothing.
func (r *Result) Done(o Outcome) {
	if r.started == nil {
		return
	}
	r.started.Finish(o == OutcomeFailed)
	r.started = nil
}

func (r *Result) reset(p *Pool) {
	r.Done(OutcomeOK) // a Result reused without Done must not leak a count
	r.Status = StatusOK
	r.n = 0
	r.pool = p
}

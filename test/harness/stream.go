package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers is an ordered header list with lower-case keys; a key may repeat.
type Headers [][2]string

// Get returns the first value of key ("" if absent).
func (h Headers) Get(key string) string {
	key = strings.ToLower(key)
	for _, kv := range h {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

// Values returns every value of key, in order.
func (h Headers) Values(key string) []string {
	key = strings.ToLower(key)
	var out []string
	for _, kv := range h {
		if kv[0] == key {
			out = append(out, kv[1])
		}
	}
	return out
}

// Has reports whether key is present.
func (h Headers) Has(key string) bool { return len(h.Values(key)) > 0 }

// EventKind names what left the filter chain.
type EventKind string

const (
	UpHeaders    EventKind = "up_headers"    // request headers reached the router
	UpData       EventKind = "up_data"       // a request body frame reached the router
	UpTrailers   EventKind = "up_trailers"   // request trailers reached the router
	DownHeaders  EventKind = "down_headers"  // response headers reached the client
	DownData     EventKind = "down_data"     // a response body frame reached the client
	DownTrailers EventKind = "down_trailers" // response trailers reached the client
	LocalReplyEv EventKind = "local_reply"   // a local reply started (send_response, or the router)
	ResetEv      EventKind = "reset"         // the stream was reset

	// Upstream attempts (a route whose cluster abihost knows, see
	// Host.ConfigureCluster): Event.Attempt numbers the try, from 1.
	AttemptEv  EventKind = "attempt"     // the router started a try on Event.Endpoint (Event.Source: override or fallback)
	UAHeaders  EventKind = "ua_headers"  // a try's request headers reached the upstream codec: sent as they are now
	UAData     EventKind = "ua_data"     // a try's request body frame reached the codec
	UATrailers EventKind = "ua_trailers" // a try's request trailers reached the codec
	RetryEv    EventKind = "retry"       // the router gave a try up (Event.Status, 0 for a reset; Event.Reason) to retry
)

// Event is one thing leaving the chain, in order.
type Event struct {
	Kind    EventKind
	EOS     bool
	Headers Headers // headers and trailers
	Data    []byte  // body frames
	Status  int     // local reply
	Details string  // local reply
	Who     string  // local reply: the filter that sent it, or "router"
	// Route and Cluster (up_headers): the route the router forwards on, as
	// the route cache holds it then (matched when the request headers
	// arrived, again after clear_route_cache), and its cluster.
	Route   string
	Cluster string
	Reason  string // reset, retry
	// Attempt, Endpoint and Source: upstream attempt events.
	Attempt  int
	Endpoint string
	Source   string
	At       time.Time
}

// LogLine is a module log line attributed to a stream (Options.LogEvents).
type LogLine struct {
	Level string
	Msg   string
}

// Stream is one HTTP stream through the chain, pinned to one worker thread.
// Its methods send what the client or the upstream does; the filters' effects
// arrive as Events.
type Stream struct {
	h      *Host
	ID     uint64
	Worker int

	mu     sync.Mutex
	events []Event
	logs   []LogLine
	notify chan struct{}
	state  *StreamState
}

// StreamOptions pick the worker and the stream info attributes.
type StreamOptions struct {
	Pin         bool // run on worker Worker; otherwise abihost picks round robin
	Worker      int
	Protocol    string // RequestProtocol attribute (default HTTP/1.1)
	Source      string // SourceAddress (default 127.0.0.1:40000)
	Destination string // DestinationAddress (default 127.0.0.1:10000)
	RouteName   string // XdsRouteName
}

// Open starts a stream: abihost calls on_http_filter_new for every filter
// of the current chain, on the stream's worker thread.
func (h *Host) Open(o StreamOptions) (*Stream, error) {
	id := h.sid.Add(1)
	s := &Stream{h: h, ID: id, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	h.streams[id] = s
	h.mu.Unlock()
	opt := func(v string) string {
		if v == "" {
			return "-"
		}
		return b64s(v)
	}
	worker := -1
	if o.Pin {
		worker = o.Worker
	}
	raw, err := h.call(context.Background(), "open", strconv.FormatUint(id, 10), strconv.Itoa(worker),
		opt(o.Protocol), opt(o.Source), opt(o.Destination), opt(o.RouteName))
	if err != nil {
		h.forget(id)
		return nil, err
	}
	var r struct {
		Worker int `json:"worker"`
	}
	_ = json.Unmarshal(raw, &r)
	s.Worker = r.Worker
	return s, nil
}

func (h *Host) forget(id uint64) {
	h.mu.Lock()
	delete(h.streams, id)
	h.mu.Unlock()
}

func (s *Stream) push(ev Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	s.wake()
}

func (s *Stream) pushLog(l LogLine) {
	s.mu.Lock()
	s.logs = append(s.logs, l)
	s.mu.Unlock()
	s.wake()
}

func (s *Stream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Stream) cmd(cmd string, args ...string) (json.RawMessage, error) {
	return s.h.call(context.Background(), cmd, append([]string{strconv.FormatUint(s.ID, 10)}, args...)...)
}

func (s *Stream) do(cmd string, args ...string) error {
	_, err := s.cmd(cmd, args...)
	return err
}

// RequestHeaders sends the client's request headers (pseudo-headers :method,
// :path, :authority, :scheme included). abihost adds x-request-id and
// x-forwarded-proto as Envoy's connection manager does.
func (s *Stream) RequestHeaders(h Headers, eos bool) error {
	return s.do("reqh", append([]string{boolArg(eos)}, headerArgs(h)...)...)
}

// RequestData sends one request body frame.
func (s *Stream) RequestData(b []byte, eos bool) error { return s.do("reqd", boolArg(eos), b64(b)) }

// RequestTrailers sends request trailers (end of stream).
func (s *Stream) RequestTrailers(h Headers) error { return s.do("reqt", headerArgs(h)...) }

// SetUpstream sets the endpoint that serves the stream (the UpstreamAddress
// and UpstreamPort attributes).
func (s *Stream) SetUpstream(addr string) error { return s.do("upstream", b64s(addr)) }

// SetMetadataList puts a list of strings in the stream's dynamic metadata
// under ns/key, as a filter before ours would.
func (s *Stream) SetMetadataList(ns, key string, values []string) error {
	args := []string{b64s(ns), b64s(key), strconv.Itoa(len(values))}
	for _, v := range values {
		args = append(args, b64s(v))
	}
	return s.do("metalist", args...)
}

// ResponseHeaders sends the upstream's response headers (with :status).
func (s *Stream) ResponseHeaders(h Headers, eos bool) error {
	return s.do("resh", append([]string{boolArg(eos)}, headerArgs(h)...)...)
}

// ResponseData sends one upstream response body frame.
func (s *Stream) ResponseData(b []byte, eos bool) error { return s.do("resd", boolArg(eos), b64(b)) }

// ResponseTrailers sends the upstream's response trailers.
func (s *Stream) ResponseTrailers(h Headers) error { return s.do("rest", headerArgs(h)...) }

// RouterReply makes the router answer locally, as Envoy's router does when
// no upstream can be reached (503 no healthy upstream, connect failure...).
func (s *Stream) RouterReply(status int, body []byte, details string) error {
	return s.do("routerreply", strconv.Itoa(status), b64(body), b64s(details))
}

// StreamState is what abihost knows of a stream: Envoy's stream info plus
// ABI accounting.
type StreamState struct {
	Metadata             map[string]map[string]any `json:"metadata"`
	FilterState          map[string][]byte         `json:"filterState"`
	Worker               int                       `json:"worker"`
	RouteCacheClears     int                       `json:"routeCacheClears"`
	ClusterCacheClears   int                       `json:"clusterCacheClears"`
	Hooks                int                       `json:"hooks"`     // hook invocations for this stream
	Callbacks            int                       `json:"callbacks"` // stream callbacks made by its filters
	ScheduledDelivered   int                       `json:"scheduledDelivered"`
	SchedulerCommits     int                       `json:"schedulerCommits"`
	ForeignThreadCommits int                       `json:"foreignThreadCommits"` // commits from threads other than the worker
	ForeignThreadCalls   int                       `json:"foreignThreadCalls"`   // refused callbacks from other threads
	LocalReplies         int                       `json:"localReplies"`
	Completed            bool                      `json:"completed"`
	Reset                bool                      `json:"reset"`
	ResponseCode         int                       `json:"responseCode"`
	Attempts             int                       `json:"attempts"` // upstream tries abihost's router made (clusters it knows)
	Route                string                    `json:"route"`    // the route the router used ("" not reached, or none matched)
	Cluster              string                    `json:"cluster"`  // that route's cluster
	Details              string                    `json:"details"`
	Flags                string                    `json:"flags"`
	Violations           []string                  `json:"violations"`
}

// MetadataString returns a string value of the dynamic metadata.
func (st *StreamState) MetadataString(ns, key string) (string, bool) {
	v, ok := st.Metadata[ns][key].(string)
	return v, ok
}

func (s *Stream) stateCmd(cmd string) (*StreamState, error) {
	raw, err := s.cmd(cmd)
	if err != nil {
		return nil, err
	}
	var r struct {
		State StreamState `json:"state"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r.State, nil
}

// State reads the stream's dynamic metadata, filter state and counts now.
func (s *Stream) State() (*StreamState, error) { return s.stateCmd("state") }

// End completes the stream as Envoy does (on_http_filter_stream_complete,
// then on_http_filter_destroy for every filter) and returns its final state.
func (s *Stream) End() (*StreamState, error) { return s.end("end") }

// Reset ends the stream by a reset (the filters still get stream_complete
// and destroy).
func (s *Stream) Reset() (*StreamState, error) { return s.end("reset") }

func (s *Stream) end(cmd string) (*StreamState, error) {
	st, err := s.stateCmd(cmd)
	s.h.forget(s.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
	if !s.h.opts.AllowViolations {
		if len(st.Violations) > 0 {
			s.h.t.Errorf("stream %d: ABI violations: %s", s.ID, strings.Join(st.Violations, "; "))
		}
		if st.ForeignThreadCalls > 0 {
			s.h.t.Errorf("stream %d: %d stream callbacks came from outside the stream's hooks (a goroutine?)", s.ID, st.ForeignThreadCalls)
		}
	}
	return st, nil
}

// Events returns a copy of the events so far.
func (s *Stream) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Logs returns the module's log lines for this stream (Options.LogEvents).
func (s *Stream) Logs() []LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogLine(nil), s.logs...)
}

// Wait blocks until cond holds for the events so far, ctx ends or abihost
// dies.
func (s *Stream) Wait(ctx context.Context, cond func([]Event) bool) ([]Event, error) {
	for {
		ev := s.Events()
		if cond(ev) {
			return ev, nil
		}
		s.h.mu.Lock()
		dead := s.h.dead
		s.h.mu.Unlock()
		if dead != nil {
			return ev, dead
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return ev, fmt.Errorf("stream %d: %w (events so far: %s)", s.ID, ctx.Err(), Summary(ev))
		}
	}
}

// RequestLeft reports whether the whole request has reached the router.
func RequestLeft(ev []Event) bool {
	for _, e := range ev {
		if (e.Kind == UpHeaders || e.Kind == UpData) && e.EOS || e.Kind == UpTrailers {
			return true
		}
	}
	return false
}

// ClientDone reports whether the client has the whole response (or a reset).
func ClientDone(ev []Event) bool {
	for _, e := range ev {
		if (e.Kind == DownHeaders || e.Kind == DownData) && e.EOS || e.Kind == DownTrailers || e.Kind == ResetEv {
			return true
		}
	}
	return false
}

// Answered reports whether a local reply or reset answers the stream.
func Answered(ev []Event) bool {
	for _, e := range ev {
		if e.Kind == LocalReplyEv || e.Kind == ResetEv {
			return true
		}
	}
	return false
}

// UpstreamRequest is the request as it left the chain toward the router.
type UpstreamRequest struct {
	Headers  Headers
	Body     []byte
	Frames   [][]byte // body frames as the router got them
	Trailers Headers
	Complete bool
}

// Upstream assembles the request the router got.
func (s *Stream) Upstream() *UpstreamRequest { return upstreamOf(s.Events()) }

func upstreamOf(ev []Event) *UpstreamRequest {
	var u *UpstreamRequest
	for _, e := range ev {
		switch e.Kind {
		case UpHeaders:
			u = &UpstreamRequest{Headers: e.Headers, Complete: e.EOS}
		case UpData:
			if u != nil {
				u.Body = append(u.Body, e.Data...)
				u.Frames = append(u.Frames, e.Data)
				u.Complete = u.Complete || e.EOS
			}
		case UpTrailers:
			if u != nil {
				u.Trailers = e.Headers
				u.Complete = true
			}
		}
	}
	return u
}

// ClientResponse is what the client got.
type ClientResponse struct {
	Status   int
	Headers  Headers
	Body     []byte
	Chunks   [][]byte // body frames as the client got them
	EOSFrame bool     // end of stream came on an empty data frame
	Trailers Headers
	Complete bool
	Reset    string
}

// Client assembles the client's response so far.
func (s *Stream) Client() *ClientResponse { return clientOf(s.Events()) }

func clientOf(ev []Event) *ClientResponse {
	c := &ClientResponse{}
	for _, e := range ev {
		switch e.Kind {
		case DownHeaders:
			c.Headers = e.Headers
			c.Status, _ = strconv.Atoi(e.Headers.Get(":status"))
			c.Complete = e.EOS
		case DownData:
			c.Body = append(c.Body, e.Data...)
			c.Chunks = append(c.Chunks, e.Data)
			if e.EOS {
				c.Complete = true
				c.EOSFrame = len(e.Data) == 0
			}
		case DownTrailers:
			c.Trailers = e.Headers
			c.Complete = true
		case ResetEv:
			c.Reset = e.Reason
		}
	}
	return c
}

// LocalReply is a reply the chain produced itself.
type LocalReply struct {
	Status  int
	Details string
	Who     string // the sending filter, or "router"
}

func localReplyOf(ev []Event) *LocalReply {
	for _, e := range ev {
		if e.Kind == LocalReplyEv {
			return &LocalReply{Status: e.Status, Details: e.Details, Who: e.Who}
		}
	}
	return nil
}

// Summary renders events compactly for failure messages.
func Summary(ev []Event) string {
	var b strings.Builder
	for i, e := range ev {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(e.Kind))
		switch e.Kind {
		case UpData, DownData:
			fmt.Fprintf(&b, "(%dB", len(e.Data))
		case LocalReplyEv:
			fmt.Fprintf(&b, "(%d %s by %s", e.Status, e.Details, e.Who)
		case ResetEv:
			fmt.Fprintf(&b, "(%s", e.Reason)
		default:
			b.WriteString("(")
		}
		if e.EOS {
			b.WriteString(" eos")
		}
		b.WriteString(")")
	}
	return b.String()
}

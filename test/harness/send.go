package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MetadataList is a list of strings in dynamic metadata.
type MetadataList struct {
	Namespace, Key string
	Values         []string
}

// Request is what a client sends through the chain.
type Request struct {
	Method    string  // default POST with a body, else GET
	Path      string  // default /v1/chat/completions
	Authority string  // default localhost
	Scheme    string  // default http
	Headers   Headers // more request headers (lower-case keys)
	Body      []byte
	Chunks    [][]byte // the body as separate frames (instead of Body)
	Trailers  Headers

	// Cluster is the routed cluster's host set (ip:port), what Envoy's
	// override_host policy checks entries of x-gateway-destination-endpoint
	// against and what its round-robin fallback walks. Unused when the
	// route's cluster is one abihost knows (Host.ConfigureCluster): its
	// router then picks among that cluster's hosts.
	Cluster []string
	// Retries after the first attempt (envoy.yaml: 2). NoRetries for none.
	Retries int
	// RetriableStatus are retried 5xx codes (envoy.yaml: 500, 502, 503, 504).
	RetriableStatus []int
	Timeout         time.Duration // the whole exchange (default 60s)
	Stream          StreamOptions
	// MetadataLists are put in the stream's dynamic metadata before the
	// request enters the chain, as filters before ours would leave them.
	MetadataLists []MetadataList
	// MetadataStrings likewise, for string values.
	MetadataStrings []MetadataString
}

// NoRetries disables retries in Request.Retries.
const NoRetries = -1

// Attempt is one try of the router.
type Attempt struct {
	Endpoint string
	Source   string // "override" (the destination list) or "fallback" (round robin)
	Status   int    // 0 when the connection failed
	Err      string
}

// UpstreamReceived is the HTTP/1.1 request the serving upstream got.
type UpstreamReceived struct {
	Method   string
	Path     string
	Host     string
	Headers  http.Header
	Body     []byte
	Trailers http.Header
}

// UpstreamResponse is an upstream's answer as read off the wire.
type UpstreamResponse struct {
	Status   int
	Headers  http.Header
	Body     []byte
	Chunks   [][]byte // as read, one Read per frame sent through the hooks
	Trailers http.Header
}

// Result reports one exchange.
type Result struct {
	StreamID uint64
	Worker   int
	Upstream *UpstreamRequest  // the request as it left the chain (nil if answered before)
	Received *UpstreamReceived // what the serving upstream received
	Endpoint string            // the endpoint that served ("" for none)
	// UpstreamResponse is what the serving upstream answered, as read off
	// the wire (before the response hooks).
	UpstreamResponse *UpstreamResponse
	Attempts         []Attempt
	// AttemptRequests: with a cluster abihost knows, every try's request as
	// the upstream codec sent it (after the upstream filters).
	AttemptRequests []*AttemptRequest
	Client          *ClientResponse // what the client got
	Logs            []LogLine       // the module's log lines for the stream (Options.LogEvents)
	LocalReply      *LocalReply     // set when the chain (or the router) answered itself
	State           *StreamState    // final: metadata, filter state, route cache clears, ABI counts
	Events          []Event
}

// Send runs one request through the chain as Envoy would: the request hooks,
// then (unless a filter answered) the router forwards it to the upstream
// named by x-gateway-destination-endpoint (header, else envoy.lb metadata),
// walking that list on connect failure or a retriable 5xx like the
// override_host policy with envoy.yaml's retry policy (an entry outside
// Cluster is skipped; with no valid entry left, round robin over Cluster),
// and streams the upstream's response back through the response hooks frame
// by frame as it arrives. The stream then completes (stream_complete and
// destroy) and Result.State holds its final state.
func (h *Host) Send(ctx context.Context, req *Request) (*Result, error) {
	timeout := req.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := h.Open(req.Stream)
	if err != nil {
		return nil, err
	}
	for _, m := range req.MetadataLists {
		if err := s.SetMetadataList(m.Namespace, m.Key, m.Values); err != nil {
			return nil, err
		}
	}
	for _, m := range req.MetadataStrings {
		if err := s.SetMetadataString(m.Namespace, m.Key, m.Value); err != nil {
			return nil, err
		}
	}
	if req.Retries != 0 || req.RetriableStatus != nil {
		retries, codes := req.Retries, req.RetriableStatus
		if retries == 0 {
			retries = 2
		} else if retries < 0 {
			retries = 0
		}
		if codes == nil {
			codes = []int{500, 502, 503, 504}
		}
		if err := s.SetRetryPolicy(retries, true, codes); err != nil {
			return nil, err
		}
	}
	res := &Result{StreamID: s.ID, Worker: s.Worker}
	err = h.exchange(ctx, s, req, res)
	var st *StreamState
	var endErr error
	if c := clientOf(s.Events()); err != nil && !c.Complete {
		st, endErr = s.Reset()
	} else {
		st, endErr = s.End()
	}
	res.State = st
	res.Events = s.Events()
	res.Client = clientOf(res.Events)
	res.LocalReply = localReplyOf(res.Events)
	res.AttemptRequests = AttemptRequests(res.Events)
	res.Logs = s.Logs()
	if res.Upstream == nil {
		res.Upstream = upstreamOf(res.Events)
	}
	if err == nil {
		err = endErr
	}
	return res, err
}

func (h *Host) exchange(ctx context.Context, s *Stream, req *Request, res *Result) error {
	frames := req.Chunks
	if frames == nil && len(req.Body) > 0 {
		frames = [][]byte{req.Body}
	}
	method := req.Method
	if method == "" {
		method = "GET"
		if len(frames) > 0 {
			method = "POST"
		}
	}
	path, authority, scheme := req.Path, req.Authority, req.Scheme
	if path == "" {
		path = "/v1/chat/completions"
	}
	if authority == "" {
		authority = "localhost"
	}
	if scheme == "" {
		scheme = "http"
	}
	hdrs := Headers{{":method", method}, {":path", path}, {":authority", authority}, {":scheme", scheme}}
	for _, kv := range req.Headers {
		hdrs = append(hdrs, [2]string{strings.ToLower(kv[0]), kv[1]})
	}
	if err := s.RequestHeaders(hdrs, len(frames) == 0 && len(req.Trailers) == 0); err != nil {
		return err
	}
	for i, f := range frames {
		if err := s.RequestData(f, i == len(frames)-1 && len(req.Trailers) == 0); err != nil {
			return err
		}
	}
	if len(req.Trailers) > 0 {
		if err := s.RequestTrailers(req.Trailers); err != nil {
			return err
		}
	}
	ev, err := s.Wait(ctx, func(ev []Event) bool { return RequestLeft(ev) || Answered(ev) })
	if err != nil {
		return fmt.Errorf("the request did not leave the chain: %w", err)
	}
	if !Answered(ev) && attemptStarted(ev, 1) {
		// abihost's router forwards on a cluster it knows: tries run there.
		res.Upstream = upstreamOf(ev)
		if err := h.forwardAttempts(ctx, s, res); err != nil {
			return err
		}
	} else if !Answered(ev) {
		res.Upstream = upstreamOf(ev)
		if err := h.forward(ctx, s, req, res); err != nil {
			return err
		}
	}
	if _, err := s.Wait(ctx, ClientDone); err != nil {
		return fmt.Errorf("the response did not reach the client: %w", err)
	}
	return nil
}

// destinations reads the override host list: the header, else the envoy.lb
// metadata (override_host_sources in envoy.yaml).
func destinations(s *Stream, up *UpstreamRequest) ([]string, error) {
	v := up.Headers.Get("x-gateway-destination-endpoint")
	if v == "" {
		st, err := s.State()
		if err != nil {
			return nil, err
		}
		switch m := st.Metadata["envoy.lb"]["x-gateway-destination-endpoint"].(type) {
		case string:
			v = m
		case []any:
			var parts []string
			for _, p := range m {
				if ps, ok := p.(string); ok {
					parts = append(parts, ps)
				}
			}
			v = strings.Join(parts, ",")
		}
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

func (h *Host) forward(ctx context.Context, s *Stream, req *Request, res *Result) error {
	up := res.Upstream
	list, err := destinations(s, up)
	if err != nil {
		return err
	}
	inCluster := map[string]bool{}
	for _, c := range req.Cluster {
		inCluster[c] = true
	}
	retries := req.Retries
	if retries == 0 {
		retries = 2
	} else if retries < 0 {
		retries = 0
	}
	retriable := req.RetriableStatus
	if retriable == nil {
		retriable = []int{500, 502, 503, 504}
	}
	pos := 0
	for attempt := 0; attempt <= retries; attempt++ {
		ep, src := "", "override"
		for pos < len(list) && ep == "" {
			if inCluster[list[pos]] {
				ep = list[pos]
			}
			pos++
		}
		if ep == "" {
			if len(req.Cluster) == 0 {
				break
			}
			ep, src = req.Cluster[(h.rr.Add(1)-1)%uint64(len(req.Cluster))], "fallback"
		}
		resp, rec, err := h.roundTrip(ctx, ep, up)
		if err != nil {
			res.Attempts = append(res.Attempts, Attempt{Endpoint: ep, Source: src, Err: err.Error()})
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		res.Attempts = append(res.Attempts, Attempt{Endpoint: ep, Source: src, Status: resp.StatusCode})
		if attempt < retries && contains(retriable, resp.StatusCode) {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			continue
		}
		res.Endpoint = ep
		res.Received = rec
		if err := s.SetUpstream(ep); err != nil {
			resp.Body.Close()
			return err
		}
		res.UpstreamResponse = &UpstreamResponse{Status: resp.StatusCode, Headers: resp.Header}
		return streamResponse(s, resp, res.UpstreamResponse)
	}
	if len(res.Attempts) == 0 {
		return s.RouterReply(503, []byte("no healthy upstream"), "no_healthy_upstream")
	}
	return s.RouterReply(503, []byte("upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
		"upstream_reset_before_response_started{connection_failure}")
}

var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "host": true, "content-length": true}

func (h *Host) roundTrip(ctx context.Context, ep string, up *UpstreamRequest) (*http.Response, *UpstreamReceived, error) {
	path := up.Headers.Get(":path")
	hreq, err := http.NewRequestWithContext(ctx, up.Headers.Get(":method"), "http://"+ep+path, bytes.NewReader(up.Body))
	if err != nil {
		return nil, nil, err
	}
	hreq.ContentLength = int64(len(up.Body))
	hreq.Host = up.Headers.Get(":authority")
	for _, kv := range up.Headers {
		if strings.HasPrefix(kv[0], ":") || hopByHop[kv[0]] {
			continue
		}
		hreq.Header.Add(kv[0], kv[1])
	}
	if len(up.Trailers) > 0 {
		hreq.ContentLength = -1
		hreq.Trailer = http.Header{}
		for _, kv := range up.Trailers {
			hreq.Trailer.Add(kv[0], kv[1])
		}
	}
	rec := &UpstreamReceived{Method: hreq.Method, Path: path, Host: hreq.Host, Headers: hreq.Header.Clone(), Body: up.Body}
	if len(up.Trailers) > 0 {
		rec.Trailers = hreq.Trailer.Clone()
	} else {
		rec.Headers.Set("Content-Length", strconv.Itoa(len(up.Body)))
	}
	resp, err := h.client.Do(hreq)
	if err != nil {
		return nil, nil, err
	}
	return resp, rec, nil
}

// streamResponse feeds the upstream's response through the response hooks
// frame by frame as it arrives. With a content-length, end of stream rides
// on the last data frame; a chunked (or unknown length) body ends with a
// separate empty frame, as Envoy's HTTP/1 codec delivers it.
func streamResponse(s *Stream, resp *http.Response, ur *UpstreamResponse) error {
	defer resp.Body.Close()
	hdrs := responseHeaders(resp)
	cl := resp.ContentLength
	if err := s.ResponseHeaders(hdrs, cl == 0); err != nil {
		if Answered(s.Events()) {
			return nil // a filter answered meanwhile; the router drops the upstream
		}
		return err
	}
	if cl == 0 {
		return nil
	}
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			ur.Body = append(ur.Body, buf[:n]...)
			ur.Chunks = append(ur.Chunks, append([]byte(nil), buf[:n]...))
			total += int64(n)
			eos := cl > 0 && total >= cl
			if derr := s.ResponseData(append([]byte(nil), buf[:n]...), eos); derr != nil {
				return derr
			}
			if eos || ClientDone(s.Events()) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("upstream body: %w", err)
		}
	}
	if len(resp.Trailer) > 0 {
		ur.Trailers = resp.Trailer
		var tr Headers
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				tr = append(tr, [2]string{strings.ToLower(k), v})
			}
		}
		if len(tr) > 0 {
			return s.ResponseTrailers(tr)
		}
	}
	return s.ResponseData(nil, true)
}

func contains(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// responseHeaders is resp's status and headers as Envoy's codec hands them to
// the filters: lower-case keys in a stable order, hop-by-hop headers dropped
// (content-length kept).
func responseHeaders(resp *http.Response) Headers {
	hdrs := Headers{{":status", strconv.Itoa(resp.StatusCode)}}
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] && lk != "content-length" {
			continue
		}
		for _, v := range resp.Header[k] {
			hdrs = append(hdrs, [2]string{lk, v})
		}
	}
	return hdrs
}

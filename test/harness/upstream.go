package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// UpstreamHost is one endpoint of a Cluster: its address and the metadata
// Envoy keeps for it, namespace → key → string, float64 or bool (what a
// filter reads with the Host and HostLocality metadata sources).
type UpstreamHost struct {
	Address          string // ip:port
	Metadata         map[string]map[string]any
	LocalityMetadata map[string]map[string]any
}

// Cluster is an Envoy cluster as abihost's router sees it: its hosts and its
// upstream HTTP filters (typed_extension_protocol_options
// ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].http_filters,
// the dynamic-module ones, in order, before the upstream codec). A stream
// whose route names the cluster is forwarded by abihost's router itself: one
// attempt per try, with new filter instances each, on the host the
// override_host policy picks (the x-gateway-destination-endpoint header,
// then the envoy.lb metadata string, concatenated; entries not in Hosts are
// skipped; then round robin). Send plays the upstream codec's HTTP client.
type Cluster struct {
	Name    string
	Hosts   []UpstreamHost
	Filters Chain
}

// ConfigureCluster creates the cluster's upstream filter configs (on the
// main thread, on_http_filter_config_new, as for the downstream chain) and
// installs it for streams routed to it from now on. A refused filter_config
// returns a *CommandError with what the module logged.
func (h *Host) ConfigureCluster(c Cluster) ([]MetricDef, error) {
	args, err := clusterArgs(c)
	if err != nil {
		return nil, err
	}
	return h.configure("cluster", args)
}

// clusterArgs are the cluster command's arguments (PROTOCOL.md), for the
// protocol and for bench mode's setup file.
func clusterArgs(c Cluster) ([]string, error) {
	args := []string{b64s(c.Name), strconv.Itoa(len(c.Hosts))}
	for _, uh := range c.Hosts {
		var md []string
		n := 0
		for _, src := range []struct {
			tag string
			m   map[string]map[string]any
		}{{"h", uh.Metadata}, {"l", uh.LocalityMetadata}} {
			nss := make([]string, 0, len(src.m))
			for ns := range src.m {
				nss = append(nss, ns)
			}
			sort.Strings(nss)
			for _, ns := range nss {
				keys := make([]string, 0, len(src.m[ns]))
				for k := range src.m[ns] {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					var kind, val string
					switch v := src.m[ns][k].(type) {
					case string:
						kind, val = "s", v
					case float64:
						kind, val = "n", strconv.FormatFloat(v, 'g', -1, 64)
					case int:
						kind, val = "n", strconv.Itoa(v)
					case bool:
						kind, val = "b", strconv.FormatBool(v)
					default:
						return nil, fmt.Errorf("harness: host %s metadata %s/%s: %T is not a string, number or bool", uh.Address, ns, k, v)
					}
					md = append(md, src.tag, b64s(ns), b64s(k), kind, b64s(val))
					n++
				}
			}
		}
		args = append(args, b64s(uh.Address), strconv.Itoa(n))
		args = append(args, md...)
	}
	args = append(args, strconv.Itoa(len(c.Filters)))
	for _, f := range c.Filters {
		args = append(args, b64s(f.Name), b64(f.Config))
	}
	return args, nil
}

// MustConfigureCluster is ConfigureCluster failing the test on error.
func (h *Host) MustConfigureCluster(c Cluster) []MetricDef {
	h.t.Helper()
	m, err := h.ConfigureCluster(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// SetRetryPolicy sets the stream's route retry policy (before its request
// headers): retries after the first try, whether a reset (or connect
// failure) is retried, and the retriable status codes. Default: envoy.yaml's
// (2, true, 500 502 503 504).
func (s *Stream) SetRetryPolicy(retries int, onReset bool, codes []int) error {
	args := []string{strconv.Itoa(retries), boolArg(onReset), strconv.Itoa(len(codes))}
	for _, c := range codes {
		args = append(args, strconv.Itoa(c))
	}
	return s.do("retrypolicy", args...)
}

// AttemptResponseHeaders sends the current try's upstream response headers
// (with :status) into its upstream filters (in reverse order), then to the
// router, which retries or forwards them to the downstream chain.
func (s *Stream) AttemptResponseHeaders(h Headers, eos bool) error {
	return s.do("uresh", append([]string{boolArg(eos)}, headerArgs(h)...)...)
}

// AttemptResponseData sends one response body frame of the current try.
func (s *Stream) AttemptResponseData(b []byte, eos bool) error {
	return s.do("uresd", boolArg(eos), b64(b))
}

// AttemptResponseTrailers sends the current try's response trailers.
func (s *Stream) AttemptResponseTrailers(h Headers) error { return s.do("urest", headerArgs(h)...) }

// AttemptReset resets the current try (a connect failure, a reset): the
// router retries (retry_on reset) or answers 503.
func (s *Stream) AttemptReset(reason string) error { return s.do("ureset", b64s(reason)) }

// AttemptRequest is one try's request as the upstream codec sent it: the
// headers as they were when they reached the codec (later edits never reach
// the wire), the body frames and trailers after the upstream filters.
type AttemptRequest struct {
	Attempt  int
	Endpoint string
	Source   string
	Headers  Headers
	Body     []byte
	Frames   [][]byte
	Trailers Headers
	Complete bool // the request reached the codec with end of stream
}

// AttemptRequests assembles every try's request from the events.
func AttemptRequests(ev []Event) []*AttemptRequest {
	var out []*AttemptRequest
	byN := map[int]*AttemptRequest{}
	for _, e := range ev {
		switch e.Kind {
		case AttemptEv:
			a := &AttemptRequest{Attempt: e.Attempt, Endpoint: e.Endpoint, Source: e.Source}
			byN[e.Attempt] = a
			out = append(out, a)
		case UAHeaders:
			if a := byN[e.Attempt]; a != nil {
				a.Headers, a.Complete = e.Headers, e.EOS
			}
		case UAData:
			if a := byN[e.Attempt]; a != nil {
				a.Body = append(a.Body, e.Data...)
				a.Frames = append(a.Frames, e.Data)
				a.Complete = a.Complete || e.EOS
			}
		case UATrailers:
			if a := byN[e.Attempt]; a != nil {
				a.Trailers, a.Complete = e.Headers, true
			}
		}
	}
	return out
}

func retried(ev []Event, n int) bool {
	for _, e := range ev {
		if e.Kind == RetryEv && e.Attempt == n {
			return true
		}
	}
	return false
}

func attemptStarted(ev []Event, n int) bool {
	for _, e := range ev {
		if e.Kind == AttemptEv && e.Attempt == n {
			return true
		}
	}
	return false
}

func attemptReady(ev []Event, n int) *AttemptRequest {
	for _, a := range AttemptRequests(ev) {
		if a.Attempt == n && a.Complete {
			return a
		}
	}
	return nil
}

// forwardAttempts plays the upstream codec's HTTP client for a stream
// abihost's router forwards itself: for each try, once its request reached
// the codec, it sends that request (the headers as the codec got them) to
// the try's endpoint and feeds the response back into the try; a retry
// starts the next try, whose answer follows.
func (h *Host) forwardAttempts(ctx context.Context, s *Stream, res *Result) error {
	for n := 1; ; n++ {
		ev, err := s.Wait(ctx, func(ev []Event) bool {
			return Answered(ev) || ClientDone(ev) || attemptReady(ev, n) != nil || retried(ev, n)
		})
		if err != nil {
			return fmt.Errorf("try %d did not reach the upstream codec: %w", n, err)
		}
		if Answered(ev) || ClientDone(ev) {
			return nil
		}
		if retried(ev, n) {
			continue
		}
		ar := attemptReady(ev, n)
		resp, rec, err := h.wireRoundTrip(ctx, ar)
		if err != nil {
			res.Attempts = append(res.Attempts, Attempt{Endpoint: ar.Endpoint, Source: ar.Source, Err: err.Error()})
			if ctx.Err() != nil {
				return err
			}
			if err := s.AttemptReset("connection failure"); err != nil {
				return err
			}
			if attemptStarted(s.Events(), n+1) {
				continue
			}
			return nil // the router answered (503)
		}
		res.Attempts = append(res.Attempts, Attempt{Endpoint: ar.Endpoint, Source: ar.Source, Status: resp.StatusCode})
		ur := &UpstreamResponse{Status: resp.StatusCode, Headers: resp.Header}
		done, err := streamAttemptResponse(s, resp, ur, n)
		if err != nil {
			return err
		}
		if done {
			res.Endpoint, res.Received, res.UpstreamResponse = ar.Endpoint, rec, ur
			return nil
		}
		if !attemptStarted(s.Events(), n+1) {
			return nil
		}
	}
}

// wireRoundTrip sends a try's request as the codec had it: the
// content-length the headers carried when they reached the codec (none:
// chunked, or 0 for a header-only request), whatever the body became. A
// body that no longer matches it fails the exchange, which the router sees
// as a reset.
func (h *Host) wireRoundTrip(ctx context.Context, ar *AttemptRequest) (*http.Response, *UpstreamReceived, error) {
	path := ar.Headers.Get(":path")
	hreq, err := http.NewRequestWithContext(ctx, ar.Headers.Get(":method"), "http://"+ar.Endpoint+path, bytes.NewReader(ar.Body))
	if err != nil {
		return nil, nil, err
	}
	hreq.Host = ar.Headers.Get(":authority")
	hreq.ContentLength = -1
	if len(ar.Frames) == 0 && len(ar.Trailers) == 0 {
		hreq.ContentLength, hreq.Body = 0, http.NoBody
	}
	for _, kv := range ar.Headers {
		if kv[0] == "content-length" {
			cl, err := strconv.ParseInt(kv[1], 10, 64)
			if err != nil || cl < 0 {
				return nil, nil, fmt.Errorf("content-length %q on the wire", kv[1])
			}
			hreq.ContentLength = cl
			continue
		}
		if strings.HasPrefix(kv[0], ":") || hopByHop[kv[0]] {
			continue
		}
		hreq.Header.Add(kv[0], kv[1])
	}
	if len(ar.Trailers) > 0 {
		hreq.ContentLength = -1
		hreq.Trailer = http.Header{}
		for _, kv := range ar.Trailers {
			hreq.Trailer.Add(kv[0], kv[1])
		}
	}
	rec := &UpstreamReceived{Method: hreq.Method, Path: path, Host: hreq.Host, Headers: hreq.Header.Clone(), Body: ar.Body}
	if hreq.ContentLength >= 0 {
		rec.Headers.Set("Content-Length", strconv.FormatInt(hreq.ContentLength, 10))
	}
	if len(ar.Trailers) > 0 {
		rec.Trailers = hreq.Trailer.Clone()
	}
	resp, err := h.client.Do(hreq)
	if err != nil {
		return nil, nil, err
	}
	return resp, rec, nil
}

// streamAttemptResponse feeds an upstream response into the current try
// frame by frame (as streamResponse does downstream). done is false when the
// router retried after the headers: the rest is discarded.
func streamAttemptResponse(s *Stream, resp *http.Response, ur *UpstreamResponse, n int) (done bool, err error) {
	defer resp.Body.Close()
	hdrs := responseHeaders(resp)
	cl := resp.ContentLength
	// stopped: the try ended on the router's side (a retry, a local reply,
	// a reset): what the upstream sends next goes nowhere.
	stopped := func(err error) (bool, error) {
		ev := s.Events()
		if retried(ev, n) {
			return false, nil
		}
		if Answered(ev) || ClientDone(ev) {
			return true, nil
		}
		return true, err
	}
	if err := s.AttemptResponseHeaders(hdrs, cl == 0); err != nil {
		return stopped(err)
	}
	if retried(s.Events(), n) {
		return false, nil
	}
	if cl == 0 {
		return true, nil
	}
	buf := make([]byte, 64<<10)
	var total int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			ur.Body = append(ur.Body, buf[:k]...)
			ur.Chunks = append(ur.Chunks, append([]byte(nil), buf[:k]...))
			total += int64(k)
			eos := cl > 0 && total >= cl
			if err := s.AttemptResponseData(append([]byte(nil), buf[:k]...), eos); err != nil {
				return stopped(err)
			}
			// A filter that held the headers hands them to the router
			// with the last frame: the retry decision can come now.
			if retried(s.Events(), n) {
				return false, nil
			}
			if eos || ClientDone(s.Events()) {
				return true, nil
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if err := s.AttemptReset("remote reset"); err != nil {
				return stopped(err)
			}
			// Before the response reached the router (a filter held its
			// headers), a reset is retried like a connect failure.
			return !retried(s.Events(), n), nil
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
			if err := s.AttemptResponseTrailers(tr); err != nil {
				return stopped(err)
			}
			return !retried(s.Events(), n), nil
		}
	}
	if err := s.AttemptResponseData(nil, true); err != nil {
		return stopped(err)
	}
	return !retried(s.Events(), n), nil
}

const (
	httpProtocolOptionsKey  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	httpProtocolOptionsType = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	upstreamCodecType       = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
)

// LoadClustersYAML takes, from an Envoy bootstrap's static clusters, those
// with upstream HTTP filters
// (typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].http_filters):
// their dynamic-module filters in order, and their STATIC load_assignment
// hosts with each LbEndpoint's metadata.filter_metadata (Host) and its
// LocalityLbEndpoints' (HostLocality). As in Envoy, the filter list must end
// with the upstream codec; abihost runs no other kind of upstream filter,
// and host metadata values must be strings, numbers or bools. name is for
// errors.
func LoadClustersYAML(name string, data []byte) ([]Cluster, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []Cluster
	for _, c := range list(field(doc, "static_resources", "clusters")) {
		cname, _ := field(c, "name").(string)
		opts, _ := field(c, "typed_extension_protocol_options", httpProtocolOptionsKey).(map[string]any)
		if opts == nil {
			continue
		}
		if opts["@type"] != httpProtocolOptionsType {
			return nil, fmt.Errorf("%s: cluster %s: %s has @type %v", name, cname, httpProtocolOptionsKey, opts["@type"])
		}
		hfs := list(opts["http_filters"])
		if len(hfs) == 0 {
			continue
		}
		cl := Cluster{Name: cname}
		for i, hf := range hfs {
			hname := field(hf, "name")
			tc, _ := field(hf, "typed_config").(map[string]any)
			switch {
			case tc != nil && tc["@type"] == upstreamCodecType:
				if i != len(hfs)-1 {
					return nil, fmt.Errorf("%s: cluster %s: upstream http filter %v: the codec must be the last filter", name, cname, hname)
				}
				continue
			case tc != nil && tc["@type"] == dynamicModuleFilterType:
				f, err := filterOf(tc)
				if err != nil {
					return nil, fmt.Errorf("%s: cluster %s: upstream http filter %v: %w", name, cname, hname, err)
				}
				cl.Filters = append(cl.Filters, f)
			default:
				return nil, fmt.Errorf("%s: cluster %s: upstream http filter %v: abihost runs dynamic-module filters and the upstream codec only", name, cname, hname)
			}
			if i == len(hfs)-1 {
				return nil, fmt.Errorf("%s: cluster %s: http_filters must end with the upstream codec (%s)", name, cname, upstreamCodecType)
			}
		}
		for _, le := range list(field(c, "load_assignment", "endpoints")) {
			lmd, err := filterMetadata(field(le, "metadata", "filter_metadata"))
			if err != nil {
				return nil, fmt.Errorf("%s: cluster %s: locality metadata: %w", name, cname, err)
			}
			for _, ep := range list(field(le, "lb_endpoints")) {
				sa := field(ep, "endpoint", "address", "socket_address")
				addr, _ := field(sa, "address").(string)
				var port int
				switch v := field(sa, "port_value").(type) {
				case float64:
					port = int(v)
				case string:
					port, _ = strconv.Atoi(v)
				}
				md, err := filterMetadata(field(ep, "metadata", "filter_metadata"))
				if err != nil {
					return nil, fmt.Errorf("%s: cluster %s: host %s:%d metadata: %w", name, cname, addr, port, err)
				}
				cl.Hosts = append(cl.Hosts, UpstreamHost{Address: addr + ":" + strconv.Itoa(port), Metadata: md, LocalityMetadata: lmd})
			}
		}
		out = append(out, cl)
	}
	return out, nil
}

// filterMetadata reads metadata.filter_metadata: namespace → Struct of
// scalar values.
func filterMetadata(v any) (map[string]map[string]any, error) {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil, nil
	}
	out := map[string]map[string]any{}
	for ns, s := range m {
		fields, ok := s.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("namespace %q is not a struct", ns)
		}
		out[ns] = map[string]any{}
		for k, val := range fields {
			switch val.(type) {
			case string, float64, bool:
				out[ns][k] = val
			default:
				return nil, fmt.Errorf("%s/%s: %T: abihost keeps string, number and bool values", ns, k, val)
			}
		}
	}
	return out, nil
}

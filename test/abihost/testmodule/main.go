// Command testmodule is a scripted dynamic module for abihost's own tests:
// each filter (filter_name a, b, c or d) follows a script from its
// filter_config (which status each hook returns, what it does first) and
// logs what it observes, so tests can check the host's filter-chain
// semantics against Envoy's. It is built with the same Go SDK as the library.
//
// Script (filter_config JSON):
//
//	{"request_headers": [step, step...], "request_body": [...], "request_trailers": [...],
//	 "response_headers": [...], "response_body": [...], "response_trailers": [...],
//	 "counters": [{"name": "x", "labels": ["l"]}], "gauges": [...], "histograms": [...],
//	 "observe": ["x-h"]}
//
// The n-th call of a hook runs step n (the last step repeats). A step:
//
//	{"status": "continue|stop|stop_all_buffer|stop_all_watermark|buffer|watermark|no_buffer", "eos_status": "...",
//	 "set": [["req|resp|req_trailers|resp_trailers", "k", "v"]], "add": [...], "remove": [["req", "k"]],
//	 "append": [["received|buffered", "data"]], "drain": [["received|buffered", n]],
//	 "reply": {"status": 403, "body": "...", "headers": [["k", "v"]]},
//	 "continue_after_ms": 1, "continue_now": true, "touch_from_goroutine": true,
//	 "metadata": [{"ns": "n", "key": "k", "string": "s" | "number": 1 | "bool": true, "list": true}],
//	 "read_metadata": [{"ns": "n", "key": "k", "source": "dynamic|host|locality"}], "read_response": ["k"],
//	 "filter_state": [["k", "v"]], "read_filter_state": ["k"],
//	 "clear_route_cache": true, "refresh_cluster": true, "flag": "f",
//	 "metric": [{"kind": "counter|gauge_inc|gauge_dec|gauge_set|histogram", "id": 0, "value": 1, "tags": ["t"]}],
//	 "define_late": "name", "attributes": true, "route_name": true, "callout": true}
//
// Every hook logs "obs <filter> <hook> eos=<0|1> recv=<q> buf=<q> rb=<0|1> <observed headers>";
// on_http_filter_new and on_http_filter_destroy log "life <filter> new|destroy <instance>".
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi"
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

type step struct {
	Status             string            `json:"status"`
	EOSStatus          string            `json:"eos_status"` // the status when end_of_stream is set
	Set                [][3]string       `json:"set"`
	Add                [][3]string       `json:"add"`
	Remove             [][2]string       `json:"remove"`
	Append             [][2]string       `json:"append"`
	Drain              [][2]any          `json:"drain"`
	Reply              *reply            `json:"reply"`
	ContinueAfterMs    int               `json:"continue_after_ms"`
	ContinueNow        bool              `json:"continue_now"`
	TouchFromGoroutine bool              `json:"touch_from_goroutine"`
	Metadata           []metadataOp      `json:"metadata"`
	ReadMetadata       []metadataOp      `json:"read_metadata"`
	FilterState        [][2]string       `json:"filter_state"`
	ReadFilterState    []string          `json:"read_filter_state"`
	ClearRouteCache    bool              `json:"clear_route_cache"`
	RefreshCluster     bool              `json:"refresh_cluster"`
	Flag               string            `json:"flag"`
	Metric             []metricOp        `json:"metric"`
	DefineLate         string            `json:"define_late"`
	Attributes         bool              `json:"attributes"`
	RouteName          bool              `json:"route_name"` // log the route the stream's route cache holds
	Callout            bool              `json:"callout"`
	Respond            *respond          `json:"respond"`
	ReadResponse       []string          `json:"read_response"` // log the response headers' values (resph ...)
	Extra              map[string]string `json:"extra"`
}

type reply struct {
	Status  uint32      `json:"status"`
	Body    string      `json:"body"`
	Headers [][2]string `json:"headers"`
}

// respond answers with send_response_headers, _data and _trailers.
type respond struct {
	Status   string      `json:"status"`
	Body     string      `json:"body"`
	Trailers [][2]string `json:"trailers"`
}

type metadataOp struct {
	Source string   `json:"source"` // read_metadata: dynamic (default), host or locality
	NS     string   `json:"ns"`
	Key    string   `json:"key"`
	String *string  `json:"string"`
	Number *float64 `json:"number"`
	Bool   *bool    `json:"bool"`
	List   bool     `json:"list"`
}

type metricOp struct {
	Kind  string   `json:"kind"`
	ID    int      `json:"id"`
	Value uint64   `json:"value"`
	Tags  []string `json:"tags"`
}

type metricDef struct {
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
}

type script struct {
	RequestHeaders   []step      `json:"request_headers"`
	RequestBody      []step      `json:"request_body"`
	RequestTrailers  []step      `json:"request_trailers"`
	ResponseHeaders  []step      `json:"response_headers"`
	ResponseBody     []step      `json:"response_body"`
	ResponseTrailers []step      `json:"response_trailers"`
	Counters         []metricDef `json:"counters"`
	Gauges           []metricDef `json:"gauges"`
	Histograms       []metricDef `json:"histograms"`
	Observe          []string    `json:"observe"`
	Reject           string      `json:"reject"`
	ConfigSchedule   bool        `json:"config_schedule"`
}

type configFactory struct{ name string }

func (f *configFactory) Create(h shared.HttpFilterConfigHandle, raw []byte) (shared.HttpFilterFactory, error) {
	var s script
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("testmodule %s: %v", f.name, err)
		}
	}
	if s.Reject != "" {
		return nil, fmt.Errorf("testmodule %s: rejected: %s", f.name, s.Reject)
	}
	ff := &filterFactory{name: f.name, s: s, config: h}
	for _, d := range s.Counters {
		id, r := h.DefineCounter(d.Name, d.Labels...)
		h.Log(shared.LogLevelInfo, "define counter %s id=%d result=%d", d.Name, id, r)
	}
	for _, d := range s.Gauges {
		id, r := h.DefineGauge(d.Name, d.Labels...)
		h.Log(shared.LogLevelInfo, "define gauge %s id=%d result=%d", d.Name, id, r)
	}
	for _, d := range s.Histograms {
		id, r := h.DefineHistogram(d.Name, d.Labels...)
		h.Log(shared.LogLevelInfo, "define histogram %s id=%d result=%d", d.Name, id, r)
	}
	if s.ConfigSchedule {
		sched := h.GetScheduler()
		name := f.name
		go func() {
			time.Sleep(time.Millisecond)
			sched.Schedule(func() { h.Log(shared.LogLevelInfo, "config-scheduled %s", name) })
		}()
	}
	return ff, nil
}

func (f *configFactory) CreatePerRoute(raw []byte) (any, error) { return nil, nil }

type filterFactory struct {
	name   string
	s      script
	config shared.HttpFilterConfigHandle
}

// instances numbers filter instances per filter name, so that tests can
// tell a new instance (a new upstream attempt) from a reused one.
var instances = map[string]*atomic.Int64{"a": {}, "b": {}, "c": {}, "d": {}}

func (f *filterFactory) Create(h shared.HttpFilterHandle) shared.HttpFilter {
	id := instances[f.name].Add(1)
	h.Log(shared.LogLevelInfo, "life %s new %d", f.name, id)
	return &filter{f: f, h: h, calls: map[string]int{}, id: id}
}

func (f *filterFactory) OnDestroy() {}

type filter struct {
	id    int64
	f     *filterFactory
	h     shared.HttpFilterHandle
	calls map[string]int
}

func (x *filter) step(hook string, steps []step) *step {
	n := x.calls[hook]
	x.calls[hook] = n + 1
	if len(steps) == 0 {
		return &step{}
	}
	if n >= len(steps) {
		n = len(steps) - 1
	}
	return &steps[n]
}

func flat(b shared.BodyBuffer) string {
	var sb strings.Builder
	for _, c := range b.GetChunks() {
		sb.Write(c.ToUnsafeBytes())
	}
	return sb.String()
}

func (x *filter) observe(hook string, eos bool, request bool) {
	h := x.h
	var recv, buf string
	var rb bool
	if strings.HasSuffix(hook, "_body") {
		if request {
			recv, buf, rb = flat(h.ReceivedRequestBody()), flat(h.BufferedRequestBody()), h.ReceivedBufferedRequestBody()
		} else {
			recv, buf, rb = flat(h.ReceivedResponseBody()), flat(h.BufferedResponseBody()), h.ReceivedBufferedResponseBody()
		}
	}
	var hs []string
	for _, k := range x.f.s.Observe {
		var vals []string
		for _, v := range h.RequestHeaders().Get(k) {
			vals = append(vals, v.ToString())
		}
		hs = append(hs, fmt.Sprintf("%s=%s", k, strings.Join(vals, "|")))
	}
	h.Log(shared.LogLevelInfo, "obs %s %s eos=%d recv=%s buf=%s rb=%d %s", x.f.name, hook, b2i(eos), strconv.Quote(recv),
		strconv.Quote(buf), b2i(rb), strings.Join(hs, " "))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (x *filter) headerMap(name string) shared.HeaderMap {
	switch name {
	case "resp":
		return x.h.ResponseHeaders()
	case "req_trailers":
		return x.h.RequestTrailers()
	case "resp_trailers":
		return x.h.ResponseTrailers()
	}
	return x.h.RequestHeaders()
}

// run applies a step's actions; request tells the direction of the hook.
func (x *filter) run(hook string, s *step, request bool) {
	h := x.h
	for _, kv := range s.Set {
		x.headerMap(kv[0]).Set(kv[1], kv[2])
	}
	for _, kv := range s.Add {
		x.headerMap(kv[0]).Add(kv[1], kv[2])
	}
	for _, kv := range s.Remove {
		x.headerMap(kv[0]).Remove(kv[1])
	}
	body := func(which string) shared.BodyBuffer {
		switch {
		case request && which == "received":
			return h.ReceivedRequestBody()
		case request:
			return h.BufferedRequestBody()
		case which == "received":
			return h.ReceivedResponseBody()
		}
		return h.BufferedResponseBody()
	}
	for _, a := range s.Append {
		body(a[0]).Append([]byte(a[1]))
	}
	for _, d := range s.Drain {
		n, _ := d[1].(float64)
		body(d[0].(string)).Drain(uint64(n))
	}
	for _, m := range s.Metadata {
		switch {
		case m.List && m.String != nil:
			h.Log(shared.LogLevelInfo, "md-add %s %s %v", m.NS, m.Key, h.AddMetadataListString(m.NS, m.Key, *m.String))
		case m.List && m.Number != nil:
			h.Log(shared.LogLevelInfo, "md-add %s %s %v", m.NS, m.Key, h.AddMetadataListNumber(m.NS, m.Key, *m.Number))
		case m.List && m.Bool != nil:
			h.Log(shared.LogLevelInfo, "md-add %s %s %v", m.NS, m.Key, h.AddMetadataListBool(m.NS, m.Key, *m.Bool))
		case m.String != nil:
			h.SetMetadata(m.NS, m.Key, *m.String)
		case m.Number != nil:
			h.SetMetadata(m.NS, m.Key, *m.Number)
		case m.Bool != nil:
			h.SetMetadata(m.NS, m.Key, *m.Bool)
		}
	}
	for _, m := range s.ReadMetadata {
		src := map[string]shared.MetadataSourceType{"": shared.MetadataSourceTypeDynamic,
			"host": shared.MetadataSourceTypeHost, "locality": shared.MetadataSourceTypeHostLocality}[m.Source]
		tag := "md"
		if m.Source != "" {
			tag = "md@" + m.Source
		}
		var parts []string
		if v, ok := h.GetMetadataString(src, m.NS, m.Key); ok {
			parts = append(parts, "string="+v.ToString())
		}
		if v, ok := h.GetMetadataNumber(src, m.NS, m.Key); ok {
			parts = append(parts, fmt.Sprintf("number=%v", v))
		}
		if v, ok := h.GetMetadataBool(src, m.NS, m.Key); ok {
			parts = append(parts, fmt.Sprintf("bool=%v", v))
		}
		if n, ok := h.GetMetadataListSize(src, m.NS, m.Key); ok {
			var items []string
			for i := 0; i < n; i++ {
				if v, ok := h.GetMetadataListString(src, m.NS, m.Key, i); ok {
					items = append(items, "s:"+v.ToString())
				} else if v, ok := h.GetMetadataListNumber(src, m.NS, m.Key, i); ok {
					items = append(items, fmt.Sprintf("n:%v", v))
				} else if v, ok := h.GetMetadataListBool(src, m.NS, m.Key, i); ok {
					items = append(items, fmt.Sprintf("b:%v", v))
				}
			}
			parts = append(parts, "list="+strings.Join(items, ","))
		}
		var keys []string
		for _, k := range h.GetMetadataKeys(src, m.NS) {
			keys = append(keys, k.ToString())
		}
		var nss []string
		for _, n := range h.GetMetadataNamespaces(src) {
			nss = append(nss, n.ToString())
		}
		_, routeOK := h.GetMetadataString(shared.MetadataSourceTypeRoute, m.NS, m.Key)
		h.Log(shared.LogLevelInfo, "%s %s %s %s keys=%s namespaces=%s route=%v", tag, m.NS, m.Key, strings.Join(parts, " "),
			strings.Join(keys, ","), strings.Join(nss, ","), routeOK)
	}
	for _, kv := range s.FilterState {
		h.SetFilterState(kv[0], []byte(kv[1]))
	}
	for _, k := range s.ReadFilterState {
		v, ok := h.GetFilterState(k)
		h.Log(shared.LogLevelInfo, "fs %s %q %v", k, v.ToString(), ok)
	}
	if len(s.ReadResponse) > 0 {
		var parts []string
		for _, k := range s.ReadResponse {
			var vals []string
			for _, v := range h.ResponseHeaders().Get(k) {
				vals = append(vals, v.ToString())
			}
			parts = append(parts, fmt.Sprintf("%s=%s", k, strings.Join(vals, "|")))
		}
		h.Log(shared.LogLevelInfo, "resph %s %s n=%d", x.f.name, strings.Join(parts, " "), len(h.ResponseHeaders().GetAll()))
	}
	if s.RouteName {
		v, ok := h.GetAttributeString(shared.AttributeIDXdsRouteName)
		h.Log(shared.LogLevelInfo, "route %s %v", v.ToString(), ok)
	}
	if s.ClearRouteCache {
		h.ClearRouteCache()
	}
	if s.RefreshCluster {
		h.RefreshRouteCluster()
	}
	if s.Flag != "" {
		h.AddCustomFlag(s.Flag)
	}
	for _, m := range s.Metric {
		var r shared.MetricsResult
		id := shared.MetricID(m.ID)
		switch m.Kind {
		case "counter":
			r = h.IncrementCounterValue(id, m.Value, m.Tags...)
		case "gauge_inc":
			r = h.IncrementGaugeValue(id, m.Value, m.Tags...)
		case "gauge_dec":
			r = h.DecrementGaugeValue(id, m.Value, m.Tags...)
		case "gauge_set":
			r = h.SetGaugeValue(id, m.Value, m.Tags...)
		case "histogram":
			r = h.RecordHistogramValue(id, m.Value, m.Tags...)
		}
		h.Log(shared.LogLevelInfo, "metric %s %d result=%d", m.Kind, m.ID, r)
	}
	if s.DefineLate != "" {
		_, r := x.f.config.DefineCounter(s.DefineLate)
		h.Log(shared.LogLevelInfo, "define-late %s result=%d", s.DefineLate, r)
	}
	if s.Attributes {
		var parts []string
		for _, a := range []struct {
			n  string
			id shared.AttributeID
		}{{"path", shared.AttributeIDRequestPath}, {"method", shared.AttributeIDRequestMethod},
			{"host", shared.AttributeIDRequestHost}, {"protocol", shared.AttributeIDRequestProtocol},
			{"upstream", shared.AttributeIDUpstreamAddress}, {"url_path", shared.AttributeIDRequestUrlPath},
			{"query", shared.AttributeIDRequestQuery}, {"request_id", shared.AttributeIDRequestId}} {
			v, ok := h.GetAttributeString(a.id)
			parts = append(parts, fmt.Sprintf("%s=%s/%v", a.n, v.ToString(), ok))
		}
		code, ok := h.GetAttributeNumber(shared.AttributeIDResponseCode)
		parts = append(parts, fmt.Sprintf("code=%v/%v", code, ok))
		port, ok := h.GetAttributeNumber(shared.AttributeIDUpstreamPort)
		parts = append(parts, fmt.Sprintf("upstream_port=%v/%v", port, ok))
		h.Log(shared.LogLevelInfo, "attrs %s %s", hook, strings.Join(parts, " "))
	}
	if s.Callout { // abihost does not emulate callouts: it must abort naming the callback
		h.HttpCallout("cluster", [][2]string{{":method", "GET"}, {":path", "/"}, {"host", "x"}}, nil, 1000, nil)
	}
	if s.TouchFromGoroutine {
		done := make(chan struct{})
		go func() {
			defer close(done)
			v := h.RequestHeaders().GetOne(":path") // illegal: not inside a hook
			_ = v
		}()
		<-done
	}
	if s.ContinueNow {
		if request {
			h.ContinueRequest()
		} else {
			h.ContinueResponse()
		}
	}
	if s.ContinueAfterMs > 0 {
		sched := h.GetScheduler()
		delay := time.Duration(s.ContinueAfterMs) * time.Millisecond
		name := x.f.name
		go func() {
			time.Sleep(delay)
			sched.Schedule(func() {
				h.Log(shared.LogLevelInfo, "obs %s scheduled-continue %s", name, hook)
				if request {
					h.ContinueRequest()
				} else {
					h.ContinueResponse()
				}
			})
		}()
	}
	if s.Respond != nil {
		h.SendResponseHeaders([][2]string{{":status", s.Respond.Status}, {"content-type", "text/plain"}}, false)
		h.SendResponseData([]byte(s.Respond.Body), len(s.Respond.Trailers) == 0)
		if len(s.Respond.Trailers) > 0 {
			h.SendResponseTrailers(s.Respond.Trailers)
		}
	}
	if s.Reply != nil {
		h.SendLocalResponse(s.Reply.Status, s.Reply.Headers, []byte(s.Reply.Body), "testmodule_reply")
	}
}

var headerStatus = map[string]shared.HeadersStatus{"": shared.HeadersStatusContinue, "continue": shared.HeadersStatusContinue,
	"stop": shared.HeadersStatusStop, "stop_all_buffer": shared.HeadersStatusStopAllAndBuffer,
	"stop_all_watermark": shared.HeadersStatusStopAllAndWatermark}
var bodyStatus = map[string]shared.BodyStatus{"": shared.BodyStatusContinue, "continue": shared.BodyStatusContinue,
	"buffer": shared.BodyStatusStopAndBuffer, "watermark": shared.BodyStatusStopAndWatermark,
	"no_buffer": shared.BodyStatusStopNoBuffer}
var trailerStatus = map[string]shared.TrailersStatus{"": shared.TrailersStatusContinue, "continue": shared.TrailersStatusContinue,
	"stop": shared.TrailersStatusStop}

// hook takes the script's next step for a hook, logs what the filter sees
// and runs the step's actions.
func (x *filter) hook(name string, steps []step, eos, request bool) *step {
	s := x.step(name, steps)
	x.observe(name, eos, request)
	x.run(name, s, request)
	return s
}

// bodyStatusOf is the step's answer to a body frame: EOSStatus for the last.
func bodyStatusOf(s *step, eos bool) shared.BodyStatus {
	if eos && s.EOSStatus != "" {
		return bodyStatus[s.EOSStatus]
	}
	return bodyStatus[s.Status]
}

func (x *filter) OnRequestHeaders(_ shared.HeaderMap, eos bool) shared.HeadersStatus {
	return headerStatus[x.hook("request_headers", x.f.s.RequestHeaders, eos, true).Status]
}

func (x *filter) OnRequestBody(_ shared.BodyBuffer, eos bool) shared.BodyStatus {
	return bodyStatusOf(x.hook("request_body", x.f.s.RequestBody, eos, true), eos)
}

func (x *filter) OnRequestTrailers(_ shared.HeaderMap) shared.TrailersStatus {
	return trailerStatus[x.hook("request_trailers", x.f.s.RequestTrailers, true, true).Status]
}

func (x *filter) OnResponseHeaders(_ shared.HeaderMap, eos bool) shared.HeadersStatus {
	return headerStatus[x.hook("response_headers", x.f.s.ResponseHeaders, eos, false).Status]
}

func (x *filter) OnResponseBody(_ shared.BodyBuffer, eos bool) shared.BodyStatus {
	return bodyStatusOf(x.hook("response_body", x.f.s.ResponseBody, eos, false), eos)
}

func (x *filter) OnResponseTrailers(_ shared.HeaderMap) shared.TrailersStatus {
	return trailerStatus[x.hook("response_trailers", x.f.s.ResponseTrailers, true, false).Status]
}

func (x *filter) OnStreamComplete() {
	x.h.Log(shared.LogLevelInfo, "obs %s stream_complete", x.f.name)
}

// OnDestroy logs through the handle: abihost calls on_http_filter_destroy
// inside the stream's context, so the line is the stream's.
func (x *filter) OnDestroy() { x.h.Log(shared.LogLevelInfo, "life %s destroy %d", x.f.name, x.id) }

func init() {
	m := map[string]shared.HttpFilterConfigFactory{}
	for _, n := range []string{"a", "b", "c", "d"} {
		m[n] = &configFactory{name: n}
	}
	sdk.RegisterHttpFilterConfigFactories(m)
}

func main() {}

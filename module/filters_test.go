package main

import (
	"encoding/json"
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

// pickerRig is one endpoint_picker config over live metrics servers, with
// the pool at hand so tests can read its in-flight counts.
type pickerRig struct {
	cfg  *pickerFilterConfig
	pool *picker.Pool
}

func newPickerRig(t *testing.T, n int) pickerRig {
	quoted := `"` + strings.Join(metricsServers(t, n), `","`) + `"`
	p, err := filterconfig.Parse(filterconfig.EndpointPicker,
		[]byte(`{"pools":[{"name":"pool","endpoints":{"static":[`+quoted+`]},"scrape":{"interval":"1s"}}]}`))
	require.NoError(t, err)
	pools, err := picker.Open(p.EndpointPicker)
	require.NoError(t, err)
	t.Cleanup(pools.Close)
	pool := pools.List()[0]
	require.NoError(t, pool.WaitReady(5*time.Second))
	cfg, err := newPickerFilterConfig(&fakeConfigHandle{}, pools)
	require.NoError(t, err)
	return pickerRig{cfg: cfg, pool: pool}
}

// filter builds one stream's filter the way the library does: behind the
// barrier, debug-wrapped when dbg asks for it.
func (r pickerRig) filter(t *testing.T, s *fakeStream, dbg filterconfig.Debug) shared.HttpFilter {
	ff, err := newFactory(filterconfig.EndpointPicker, &fakeConfigHandle{}, dbg, func(fh shared.HttpFilterHandle) shared.HttpFilter {
		return &endpointPickerFilter{cfg: r.cfg, h: fh, s: abi.NewStream(fh)}
	}, nil)
	require.NoError(t, err)
	return ff.Create(s)
}

// counts sums the pool's per-endpoint in-flight, started and failed counts.
func (r pickerRig) counts() (inFlight int64, picks, failures uint64) {
	for _, e := range r.pool.Stats().PerEndpoint {
		inFlight += e.InFlight
		picks += e.Picks
		failures += e.Failures
	}
	return
}

func chatHeaders(s *fakeStream, body []byte) {
	s.reqHeaders.kv = append(s.reqHeaders.kv[:0], [2]string{":method", "POST"}, [2]string{":path", "/v1/chat/completions"},
		[2]string{"content-type", "application/json"}, [2]string{"content-length", strconv.Itoa(len(body))})
}

// requireOpenAIError checks the stream's one local reply.
func requireOpenAIError(t *testing.T, s *fakeStream, status uint32, code string) string {
	t.Helper()
	require.Equal(t, 1, s.replies, "exactly one local reply")
	require.Equal(t, status, s.lastReply.status)
	var e struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(s.lastReply.body, &e), string(s.lastReply.body))
	require.Equal(t, code, e.Error.Code)
	require.NotEmpty(t, e.Error.Type)
	require.NotEmpty(t, e.Error.Message)
	return e.Error.Message
}

// Every way a stream can end after a pick ends its in-flight count exactly
// once; a 5xx also counts a failure on the endpoint.
func TestPickerInFlightEndsOnEveryPath(t *testing.T) {
	rig := newPickerRig(t, 3)
	req := benchRequest(1 << 10)
	for _, tc := range []struct {
		name         string
		dbg          filterconfig.Debug
		status       string // response status; "" for a stream reset before any response
		wantFailures uint64
	}{
		{name: "200", status: "200"},
		{name: "503 from upstream or Envoy", status: "503", wantFailures: 1},
		{name: "reset before the response"},
		{name: "panic in response headers", dbg: filterconfig.Debug{PanicIn: "response_headers"}, status: "200"},
		{name: "panic in response body", dbg: filterconfig.Debug{PanicIn: "response_body"}, status: "500", wantFailures: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, picks0, failures0 := rig.counts()
			s := newFakeStream()
			chatHeaders(s, req)
			f := rig.filter(t, s, tc.dbg)
			require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false), "waits for the body")
			require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(&fakeBody{b: req}, true))
			require.NotEmpty(t, s.reqHeaders.GetOne(headerDestination).ToString())
			require.Contains(t, s.metadata, metadataLB+"/"+metadataDestination)
			inFlight, picks, _ := rig.counts()
			require.EqualValues(t, 1, inFlight)
			require.Equal(t, picks0+1, picks)
			if tc.status != "" {
				s.respHeaders.kv = append(s.respHeaders.kv, [2]string{":status", tc.status})
				f.OnResponseHeaders(&s.respHeaders, false)
				f.OnResponseBody(&fakeBody{b: []byte("{}")}, true)
			}
			f.OnStreamComplete()
			f.OnDestroy()
			inFlight, _, failures := rig.counts()
			require.Zero(t, inFlight)
			require.Equal(t, failures0+tc.wantFailures, failures)
			require.Zero(t, s.replies)
		})
	}
}

// A request the picker answers itself never starts an in-flight count, and
// the reply has the OpenAI error shape.
func TestPickerLocalReplies(t *testing.T) {
	rig := newPickerRig(t, 1)
	for _, tc := range []struct {
		name   string
		route  any
		body   string
		status uint32
		code   string
		says   string
	}{
		{name: "invalid JSON", body: `{"model":`, status: 400, code: "invalid_json"}, // ai_router's code: one parser
		{name: "route names an unknown pool", route: pickerRoute{pool: "nope"}, body: `{"model":"m","prompt":"x"}`,
			status: 503, code: "no_capacity", says: `"nope"`},
		{name: "body over the limit", body: strings.Repeat(" ", pickerMaxBody+1), status: 413, code: "request_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, picks0, _ := rig.counts()
			s := newFakeStream()
			s.route = tc.route
			chatHeaders(s, []byte(tc.body))
			s.reqHeaders.Set(headerDestination, "10.0.0.1:80") // a client never chooses
			f := rig.filter(t, s, filterconfig.Debug{})
			if f.OnRequestHeaders(&s.reqHeaders, false) == shared.HeadersStatusStop && s.replies == 0 {
				require.Equal(t, shared.BodyStatusStopNoBuffer, f.OnRequestBody(&fakeBody{b: []byte(tc.body)}, true))
			}
			msg := requireOpenAIError(t, s, tc.status, tc.code)
			require.Contains(t, msg, tc.says)
			require.Equal(t, "endpoint_picker_"+tc.code, s.lastReply.detail)
			f.OnStreamComplete()
			f.OnDestroy()
			inFlight, picks, _ := rig.counts()
			require.Zero(t, inFlight)
			require.Equal(t, picks0, picks)
		})
	}
}

// ai_router's local replies carry the OpenAI error shape, and the pooled
// body buffer goes back at OnDestroy whatever the outcome.
func TestRouterBadRequestReply(t *testing.T) {
	c := newChain(t, metricsServers(t, 1))
	for _, tc := range []struct {
		name, body, code string
		status           uint32
	}{
		{name: "invalid JSON", body: `{"model":`, status: 400},
		{name: "no model", body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStream()
			chatHeaders(s, []byte(tc.body))
			f := c.router.Create(s)
			require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false))
			require.Equal(t, shared.BodyStatusStopNoBuffer, f.OnRequestBody(&fakeBody{b: []byte(tc.body)}, true))
			require.Equal(t, 1, s.replies)
			require.Equal(t, tc.status, s.lastReply.status)
			require.True(t, strings.HasPrefix(s.lastReply.detail, "ai_router_"), s.lastReply.detail)
			var e struct {
				Error struct{ Message, Type, Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(s.lastReply.body, &e), string(s.lastReply.body))
			require.NotEmpty(t, e.Error.Message)
			require.Nil(t, s.filterState[requestFactsKey], "nothing is handed to endpoint_picker")
			f.OnStreamComplete()
			f.OnDestroy()
		})
	}
}

func TestRouterReleasesBodyOnDestroy(t *testing.T) {
	rc, err := newRouterFilterConfig(&fakeConfigHandle{}, mustRouterConfig(t, `{}`))
	require.NoError(t, err)
	for _, body := range []string{`{"model":`, string(benchRequest(1 << 10))} {
		s := newFakeStream()
		chatHeaders(s, []byte(body))
		f := &aiRouterFilter{cfg: rc, h: s, s: abi.NewStream(s)}
		f.OnRequestHeaders(&s.reqHeaders, false)
		f.OnRequestBody(&fakeBody{b: []byte(body)}, true)
		require.NotNil(t, f.body)
		f.OnStreamComplete()
		f.OnDestroy()
		require.Nil(t, f.body, "the pooled body went back")
	}
}

func mustRouterConfig(t *testing.T, raw string) *transform.Config {
	p, err := filterconfig.Parse(filterconfig.AIRouter, []byte(raw))
	require.NoError(t, err)
	return p.AIRouter
}

// A bad filter_config or per-route config is refused with the field named.
func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := (&endpointPickerConfigFactory{}).Create(&fakeConfigHandle{},
		[]byte(`{"pools":[{"name":"p","endpoints":{"static":["nope"]}}]}`))
	require.ErrorContains(t, err, "pools[0].endpoints")
	_, err = (&aiRouterConfigFactory{}).Create(&fakeConfigHandle{}, []byte(`{"maxRequestBodyBytes":"big"}`))
	require.ErrorContains(t, err, "maxRequestBodyBytes")

	_, err = (&endpointPickerConfigFactory{}).CreatePerRoute([]byte(`{"pool":1}`))
	require.ErrorContains(t, err, "pool")
	_, err = (&endpointPickerConfigFactory{}).CreatePerRoute([]byte(`{"pool":"a","extra":true}`))
	require.ErrorContains(t, err, `"extra"`)
	rc, err := (&endpointPickerConfigFactory{}).CreatePerRoute([]byte(`{"pool":"a"}`))
	require.NoError(t, err)
	require.Equal(t, pickerRoute{pool: "a"}, rc)
	rc, err = (&aiRouterConfigFactory{}).CreatePerRoute([]byte(`{"pool":"a"}`))
	require.NoError(t, err, "ai_router's, for its endpointPicker")
	require.Equal(t, pickerRoute{pool: "a"}, rc)
	_, err = (&aiRouterConfigFactory{}).CreatePerRoute([]byte(`{"pool":"a","extra":true}`))
	require.ErrorContains(t, err, `"extra"`)
	_, err = (&aiUpstreamConfigFactory{}).CreatePerRoute([]byte(`{"pool":"a"}`))
	require.ErrorContains(t, err, "ai_upstream")
	_, err = (&aiRouterConfigFactory{}).Create(&fakeConfigHandle{},
		[]byte(`{"endpointPicker":{"pools":[{"name":"p","endpoints":{"static":["nope"]}}]}}`))
	require.ErrorContains(t, err, `"endpointPicker": pools[0].endpoints`)
}

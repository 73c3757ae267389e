package main

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"strconv"
	"strings"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

// inferenceBodies are requests of every endpoint kind, in the spellings
// whose prompt bytes once differed between the two deployments.
var inferenceBodies = []struct{ name, path, body string }{
	{"chat", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi \"you\""}]}`},
	{"chat streamed (ai_router rewrites the body)", "/v1/chat/completions", `{"stream":true,"model":"m","messages":[{"role":"user","content":"hi"}]}`},
	{"completion string", "/v1/completions", `{"model":"m","prompt":"Once upon a time"}`},
	{"completion escaped string", "/v1/completions", `{"model":"m","prompt":"line\none \u00e9"}`},
	{"completion token array", "/v1/completions", `{"model":"m","prompt":[1,2,3]}`},
	{"embeddings string", "/v1/embeddings", `{"model":"m","input":"embed me"}`},
	{"embeddings array", "/v1/embeddings", `{"model":"m","input":["a","b"]}`},
	{"responses string", "/v1/responses", `{"model":"m","input":"tell me"}`},
	{"responses items", "/v1/responses?x=1", `{"model":"m","input":[{"role":"user","content":"tell me"}]}`},
}

func requestHeaders(s *fakeStream, method, path, contentType string, body []byte) {
	s.reqHeaders.kv = append(s.reqHeaders.kv[:0], [2]string{":method", method}, [2]string{":path", path},
		[2]string{"content-type", contentType}, [2]string{"content-length", strconv.Itoa(len(body))})
}

// endpoint_picker alone reads the very model and prompt bytes that
// ai_router hands it (requestFacts), for every endpoint kind: prefix hashes
// agree between the two deployments.
func TestPickerAloneReadsWhatAIRouterHandsOver(t *testing.T) {
	rc, err := newRouterFilterConfig(&fakeConfigHandle{}, mustRouterConfig(t, ""))
	require.NoError(t, err)
	for _, tc := range inferenceBodies {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStream()
			requestHeaders(s, "POST", tc.path, "application/json", []byte(tc.body))
			router := &aiRouterFilter{cfg: rc, h: s, s: abi.NewStream(s)}
			require.Equal(t, shared.HeadersStatusStop, router.OnRequestHeaders(&s.reqHeaders, false))
			require.Equal(t, shared.BodyStatusContinue, router.OnRequestBody(&fakeBody{b: []byte(tc.body)}, true))
			var b abi.Batch
			b.Start(abi.NewStream(s))
			reads := receiveRequestFacts(&b)
			b.Run()
			facts := reads.get(&b)
			require.NotNil(t, facts, "ai_router hands its parse over")
			defer router.OnDestroy()

			model, prompt, err := readInferenceBody(tc.path, []byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, facts.Model, model)
			require.Equal(t, string(facts.Prompt), string(prompt))
			require.NotEmpty(t, prompt)
		})
	}
}

// Without ai_router: a bad inference body is a 400 in OpenAI's shape (never
// forwarded), while a path the picker does not parse is always routed.
func TestPickerAloneBodies(t *testing.T) {
	rig := newPickerRig(t, 2)
	for _, tc := range []struct {
		name, method, path, contentType, body string
		noBody                                bool // the request ends with its headers
		// wantPickAtHeaders: picked without waiting for the body.
		wantPickAtHeaders bool
		wantStatus        uint32 // local reply; 0: routed
		wantCode          string
	}{
		{name: "chat", method: "POST", path: "/v1/chat/completions", contentType: "application/json",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{name: "truncated JSON", method: "POST", path: "/v1/chat/completions", contentType: "application/json",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "completion without prompt", method: "POST", path: "/v1/completions", contentType: "application/json",
			body: `{"model":"m"}`, wantStatus: 400, wantCode: "missing_required_parameter"},
		{name: "embeddings input of the wrong type", method: "POST", path: "/v1/embeddings", contentType: "application/json",
			body: `{"model":"m","input":7}`, wantStatus: 400, wantCode: "invalid_type"},
		{name: "chat without a body", method: "POST", path: "/v1/chat/completions", contentType: "application/json",
			noBody: true, wantStatus: 400, wantCode: "invalid_json"},
		{name: "inference body whatever its content-type", method: "POST", path: "/v1/completions", contentType: "text/plain",
			body: `{"model":"m","prompt":`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "multipart transcription", method: "POST", path: "/v1/audio/transcriptions", contentType: "multipart/form-data; boundary=x",
			body: "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--x--", wantPickAtHeaders: true},
		{name: "JSON pass-through that is not JSON", method: "POST", path: "/v1/audio/speech", contentType: "application/json",
			body: `{"model":`},
		{name: "JSON pass-through", method: "POST", path: "/v1/audio/speech", contentType: "application/json",
			body: `{"model":"bge","query":"q"}`},
		{name: "GET models", method: "GET", path: "/v1/models", noBody: true, wantPickAtHeaders: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStream()
			requestHeaders(s, tc.method, tc.path, tc.contentType, []byte(tc.body))
			s.reqHeaders.kv = append(s.reqHeaders.kv, [2]string{headerDestination, "10.6.6.6:80"}) // forged
			f := rig.filter(t, s, filterconfig.Debug{})
			defer f.OnDestroy()
			defer f.OnStreamComplete()
			hs := f.OnRequestHeaders(&s.reqHeaders, tc.noBody)
			switch {
			case tc.wantPickAtHeaders:
				require.Equal(t, shared.HeadersStatusContinue, hs)
			case tc.noBody:
				require.Equal(t, shared.HeadersStatusStop, hs)
			default:
				require.Equal(t, shared.HeadersStatusStop, hs, "waits for the body")
				bs := f.OnRequestBody(&fakeBody{b: []byte(tc.body)}, true)
				if tc.wantStatus == 0 {
					require.Equal(t, shared.BodyStatusContinue, bs)
				} else {
					require.Equal(t, shared.BodyStatusStopNoBuffer, bs)
				}
			}
			if tc.wantStatus != 0 {
				requireOpenAIError(t, s, tc.wantStatus, tc.wantCode)
				return
			}
			require.Zero(t, s.replies, string(s.lastReply.body))
			dest := s.reqHeaders.GetOne(headerDestination).ToString()
			require.NotEmpty(t, dest)
			require.NotContains(t, dest, "10.6.6.6")
			if tc.wantPickAtHeaders {
				// Later frames flow past without being buffered.
				require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(&fakeBody{b: []byte("more")}, false))
			}
		})
	}
}

// A JSON pass-through body over the picker's buffer limit is routed, not
// refused: the path is not the picker's to judge.
func TestPickerAloneLargePassThroughIsRouted(t *testing.T) {
	rig := newPickerRig(t, 2)
	s := newFakeStream()
	body := []byte(`{"model":"m","documents":["` + strings.Repeat("a", pickerMaxBody) + `"]}`)
	requestHeaders(s, "POST", "/v1/audio/speech", "application/json", body)
	f := rig.filter(t, s, filterconfig.Debug{})
	defer f.OnDestroy()
	defer f.OnStreamComplete()
	require.Equal(t, shared.HeadersStatusStop, f.OnRequestHeaders(&s.reqHeaders, false))
	require.Equal(t, shared.BodyStatusContinue, f.OnRequestBody(&fakeBody{b: body}, false))
	require.Zero(t, s.replies)
	require.NotEmpty(t, s.reqHeaders.GetOne(headerDestination).ToString())
}

func TestAppendSubset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"10.0.0.1:80", []string{"10.0.0.1:80"}},
		{"10.0.0.1:80,10.0.0.2:80", []string{"10.0.0.1:80", "10.0.0.2:80"}},
		{" 10.0.0.1:80 , ,10.0.0.2:80,", []string{"10.0.0.1:80", "10.0.0.2:80"}},
		{"[::1]:80,10.0.0.2:80", []string{"[::1]:80", "10.0.0.2:80"}},
		{" , ", nil},
		{"", nil},
	} {
		require.Equal(t, tc.want, appendSubset(nil, tc.in), tc.in)
	}
}

package main

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"testing"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
	"github.com/stretchr/testify/require"
)

// routeClearingStream counts route cache clears (the shared fake ignores them).
type routeClearingStream struct {
	*fakeStream
	clears int
}

func (s *routeClearingStream) ClearRouteCache() { s.clears++ }

// The request-headers step of ai_router for paths: what is answered there,
// what passes, and whether the client's x-ai-eg-model chose the route.
func TestRouterRequestHeadersByPath(t *testing.T) {
	rc, err := newRouterFilterConfig(&fakeConfigHandle{}, mustRouterConfig(t,
		`{"maxRequestBodyBytes":100,"passThroughPaths":["/health"],"budget":{"header":"x-api-key","tokens":5}}`))
	require.NoError(t, err)
	for _, tc := range []struct {
		name          string
		method, path  string
		extra         [][2]string
		want          shared.HeadersStatus
		status        uint32 // local reply, 0 for none
		clears        int
		modelHeaderOK bool // x-ai-eg-model may still be there (it is set later on checked paths)
	}{
		{"passed with the client's model header", "GET", "/health", [][2]string{{"x-ai-eg-model", "vip"}}, shared.HeadersStatusContinue, 0, 1, false},
		{"passed without it", "GET", "/health/", nil, shared.HeadersStatusContinue, 0, 0, false},
		{"passed with an empty model header", "GET", "/health", [][2]string{{"x-ai-eg-model", ""}}, shared.HeadersStatusContinue, 0, 1, false},
		{"unknown path", "POST", "/generate", [][2]string{{"x-ai-eg-model", "vip"}}, shared.HeadersStatusStop, 404, 0, true},
		{"content-length over the limit", "POST", "/v1/chat%2Fcompletions", [][2]string{{"content-length", "101"}}, shared.HeadersStatusStop, 413, 0, true},
		{"content-length at the limit waits for the body", "POST", "/v1/chat/completions", [][2]string{{"content-length", "100"}}, shared.HeadersStatusStop, 0, 0, true},
		{"content-length not a number is left to Envoy", "POST", "/invocations", [][2]string{{"content-length", "x"}}, shared.HeadersStatusStop, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &routeClearingStream{fakeStream: newFakeStream()}
			s.reqHeaders.kv = append([][2]string{{":method", tc.method}, {":path", tc.path}}, tc.extra...)
			f := &aiRouterFilter{cfg: rc, h: s, s: abi.NewStream(s)}
			require.Equal(t, tc.want, f.OnRequestHeaders(&s.reqHeaders, false))
			if tc.status == 0 {
				require.Zero(t, s.replies)
			} else {
				require.Equal(t, tc.status, s.lastReply.status)
			}
			require.Equal(t, tc.clears, s.clears)
			if !tc.modelHeaderOK {
				require.Empty(t, s.reqHeaders.Get(headerModel))
			}
			f.OnDestroy()
		})
	}
}

package harness

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// The typed configs of the bootstrap below, for protojson.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// upstreamBootstrap is a cluster with an upstream dynamic-module filter and
// host metadata, as Envoy v1.39 takes it.
const upstreamBootstrap = `
static_resources:
  clusters:
  - name: plain
    type: STATIC
    load_assignment:
      cluster_name: plain
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}
  - name: providers
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {}}
        http_filters:
        - name: ai_upstream
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
            dynamic_module_config: {name: inferencepool, do_not_close: true}
            filter_name: ai_upstream
            filter_config:
              "@type": type.googleapis.com/google.protobuf.Struct
              value: {schema: openai}
        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
    load_assignment:
      cluster_name: providers
      endpoints:
      - metadata:
          filter_metadata:
            zone: {name: z1}
        lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}
          metadata:
            filter_metadata:
              aigw: {backend: anthropic-1, weight: 2, tls: false}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8002}}}
`

func TestUpstreamBootstrapIsEnvoyConfig(t *testing.T) {
	j, err := yaml.YAMLToJSON([]byte(upstreamBootstrap))
	require.NoError(t, err)
	var b bootstrapv3.Bootstrap
	require.NoError(t, protojson.Unmarshal(j, &b))
	require.NoError(t, b.ValidateAll())
}

func TestLoadClustersYAML(t *testing.T) {
	cls, err := LoadClustersYAML("b.yaml", []byte(upstreamBootstrap))
	require.NoError(t, err)
	require.Equal(t, []Cluster{{
		Name:    "providers",
		Filters: Chain{{Name: "ai_upstream", Config: []byte(`{"schema":"openai"}`)}},
		Hosts: []UpstreamHost{
			{Address: "127.0.0.1:8001", Metadata: map[string]map[string]any{"aigw": {"backend": "anthropic-1", "weight": float64(2), "tls": false}},
				LocalityMetadata: map[string]map[string]any{"zone": {"name": "z1"}}},
			{Address: "127.0.0.1:8002", LocalityMetadata: map[string]map[string]any{"zone": {"name": "z1"}}},
		},
	}}, cls)

	for _, tc := range []struct{ name, old, new, wantErr string }{
		{"codec not last", "        - name: ai_upstream\n", "        - name: envoy.filters.http.upstream_codec\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n        - name: ai_upstream\n",
			"the codec must be the last filter"},
		{"no codec", "        - name: envoy.filters.http.upstream_codec\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n", "",
			"must end with the upstream codec"},
		{"nested metadata", "weight: 2", "weight: {x: 1}", "aigw/weight"},
		{"other filter", "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n    load", "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n    load",
			"dynamic-module filters and the upstream codec only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, upstreamBootstrap, tc.old)
			_, err := LoadClustersYAML("b.yaml", []byte(strings.Replace(upstreamBootstrap, tc.old, tc.new, 1)))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestAttemptRequests(t *testing.T) {
	ev := []Event{
		{Kind: UpHeaders, Headers: Headers{{":path", "/down"}}},
		{Kind: AttemptEv, Attempt: 1, Endpoint: "127.0.0.1:1", Source: "override"},
		{Kind: UAHeaders, Attempt: 1, Headers: Headers{{":path", "/one"}}},
		{Kind: UpData, Data: []byte("ab"), EOS: true},
		{Kind: UAData, Attempt: 1, Data: []byte("ab"), EOS: true},
		{Kind: RetryEv, Attempt: 1, Status: 503},
		{Kind: AttemptEv, Attempt: 2, Endpoint: "127.0.0.1:2", Source: "fallback"},
		{Kind: UAHeaders, Attempt: 2, Headers: Headers{{":path", "/two"}}},
		{Kind: UAData, Attempt: 2, Data: []byte("ab")},
		{Kind: UATrailers, Attempt: 2, Headers: Headers{{"t", "1"}}, EOS: true},
		{Kind: AttemptEv, Attempt: 3, Endpoint: "127.0.0.1:3", Source: "fallback"},
		{Kind: UAHeaders, Attempt: 3, Headers: Headers{{":path", "/three"}}},
	}
	got := AttemptRequests(ev)
	require.Equal(t, []*AttemptRequest{
		{Attempt: 1, Endpoint: "127.0.0.1:1", Source: "override", Headers: Headers{{":path", "/one"}}, Body: []byte("ab"),
			Frames: [][]byte{[]byte("ab")}, Complete: true},
		{Attempt: 2, Endpoint: "127.0.0.1:2", Source: "fallback", Headers: Headers{{":path", "/two"}}, Body: []byte("ab"),
			Frames: [][]byte{[]byte("ab")}, Trailers: Headers{{"t", "1"}}, Complete: true},
		{Attempt: 3, Endpoint: "127.0.0.1:3", Source: "fallback", Headers: Headers{{":path", "/three"}}},
	}, got)
	require.True(t, retried(ev, 1))
	require.False(t, retried(ev, 2))
	require.Nil(t, attemptReady(ev, 3), "headers without end of stream: the request is not done")
	require.Equal(t, 2, attemptReady(ev, 2).Attempt)
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/envoyconfig"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// render loads and renders, then validates the bootstrap the way make test
// validates envoy.yaml: Envoy's v3 protos (every typed config unpacked and
// checked) and the library's own parser for every filter_config.
func render(t *testing.T, kv map[string]string) (string, []envoyconfig.DynamicModuleFilter, map[string]any) {
	t.Helper()
	c, err := Load(env(kv))
	require.NoError(t, err)
	out, err := Render(c)
	require.NoError(t, err)
	_, filters, err := envoyconfig.ValidateYAML(out)
	require.NoError(t, err, "%s", out)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(out, &doc))
	return string(out), filters, doc
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func pickerPools(t *testing.T, filters []envoyconfig.DynamicModuleFilter) []map[string]any {
	t.Helper()
	require.Len(t, filters, 2)
	require.Equal(t, "ai_router", filters[0].FilterName)
	require.Equal(t, "endpoint_picker", filters[1].FilterName)
	var cfg struct {
		Pools []map[string]any `json:"pools"`
	}
	require.NoError(t, json.Unmarshal(filters[1].FilterConfig, &cfg))
	return cfg.Pools
}

// The environment alone: one pool of IP literals, listening on every
// interface of the container, admin too.
func TestRenderFromEnvironment(t *testing.T) {
	out, filters, doc := render(t, map[string]string{
		EnvServers:  "10.0.0.7:8000, 10.0.0.8:8000,[fd00::9]:8000",
		EnvPicker:   `{"engine":"sglang","saturation":{"queue":8}}`,
		EnvAIRouter: `{"costs":[{"metadataKey":"llm_total_token","type":"total"}]}`,
	})
	require.Equal(t, "0.0.0.0", dig(doc, "static_resources", "listeners", 0, "address", "socket_address", "address"))
	require.EqualValues(t, 10000, dig(doc, "static_resources", "listeners", 0, "address", "socket_address", "port_value"))
	require.Equal(t, "0.0.0.0", dig(doc, "admin", "address", "socket_address", "address"))
	pools := pickerPools(t, filters)
	require.Equal(t, []map[string]any{{
		"name": "pool", "engine": "sglang", "saturation": map[string]any{"queue": 8.0},
		"endpoints": map[string]any{"static": []any{"10.0.0.7:8000", "10.0.0.8:8000", "[fd00::9]:8000"}},
	}}, pools)
	require.JSONEq(t, `{"costs":[{"metadataKey":"llm_total_token","type":"total"}]}`, string(filters[0].FilterConfig))
	cluster := dig(doc, "static_resources", "clusters", 0)
	require.Equal(t, "STATIC", dig(cluster, "type"))
	require.Equal(t, "pool", dig(cluster, "name"))
	require.Equal(t, "fd00::9", dig(cluster, "load_assignment", "endpoints", 0, "lb_endpoints", 2, "endpoint", "address", "socket_address", "address"))
	require.Equal(t, "pool", dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config",
		"route_config", "virtual_hosts", 0, "routes", 0, "route", "cluster"))
	// Off unless asked: the endpoint header, a namespace of our own.
	require.NotContains(t, out, "response_headers_to_add")
	require.NotContains(t, out, "metrics_namespace")
	// The Prometheus names the dashboard queries: the guard pinned off.
	require.Equal(t, false, dig(doc, "layered_runtime", "layers", 0, "static_layer", stripGuard))
}

// build/compose.yaml's config: two pools of DNS names (compose services),
// model routing, the demo's endpoint header; and the compose file agrees
// with it (mount path, published port, simulator services and ports).
func TestRenderComposeConfig(t *testing.T) {
	_, filters, doc := render(t, map[string]string{EnvConfig: "../compose/inferencepool.yaml", EnvMetricsNamespace: "inferencepool"})
	pools := pickerPools(t, filters)
	require.Len(t, pools, 2)
	require.Equal(t, map[string]any{"dns": map[string]any{"name": "sim-a", "ports": []any{8000.0, 8001.0}}}, pools[0]["endpoints"])
	require.Equal(t, map[string]any{"dns": map[string]any{"name": "sim-b", "ports": []any{8000.0}}}, pools[1]["endpoints"])
	for i, name := range []string{"a", "b"} {
		c := dig(doc, "static_resources", "clusters", i)
		require.Equal(t, name, dig(c, "name"))
		require.Equal(t, "STRICT_DNS", dig(c, "type"))
	}
	hcm := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
	routes := dig(hcm, "route_config", "virtual_hosts", 0, "routes").([]any)
	require.Len(t, routes, 2)
	// sim-model-b goes to pool b; everything else (sim-model, sim-lora) to a.
	require.Equal(t, "sim-model-b", dig(routes[0], "match", "headers", 0, "string_match", "exact"))
	require.Equal(t, "b", dig(routes[0], "route", "cluster"))
	require.Equal(t, map[string]any{"pool": "b"}, dig(routes[0], "typed_per_filter_config", "endpoint_picker", "filter_config", "value"))
	require.Equal(t, "a", dig(routes[1], "route", "cluster"))
	require.Nil(t, dig(routes[1], "match", "headers"))
	for _, r := range routes {
		require.Equal(t, "x-inferencepool-endpoint", dig(r, "response_headers_to_add", 0, "header", "key"))
		require.Equal(t, "%UPSTREAM_REMOTE_ADDRESS%", dig(r, "response_headers_to_add", 0, "header", "value"))
	}
	require.Equal(t, "inferencepool", dig(hcm, "http_filters", 0, "typed_config", "dynamic_module_config", "metrics_namespace"))

	raw, err := os.ReadFile("../compose.yaml")
	require.NoError(t, err)
	var compose map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	envoy := dig(compose, "services", "envoy")
	require.Contains(t, dig(envoy, "volumes"), "./compose/inferencepool.yaml:"+DefaultConfigFile+":ro")
	require.Contains(t, dig(envoy, "ports"), "10000:10000")
	require.Contains(t, dig(envoy, "ports"), "9901:9901")
	require.FileExists(t, filepath.Join("..", dig(envoy, "build", "dockerfile").(string)[len("build/"):]))
	// Each pool's servers are what its simulator service serves.
	for _, p := range pools {
		dns := dig(p, "endpoints", "dns")
		svc := dig(compose, "services", dig(dns, "name").(string))
		require.NotNil(t, svc, "no compose service %v", dig(dns, "name"))
		var args []string
		for _, a := range dig(svc, "command").([]any) {
			args = append(args, fmt.Sprint(a))
		}
		port, ranks := flagInt(args, "--port", 0), flagInt(args, "--data-parallel-size", 1)
		var want []any
		for r := 0; r < ranks; r++ {
			want = append(want, float64(port+r))
		}
		require.Equal(t, want, dig(dns, "ports"), "service %v", dig(dns, "name"))
		require.NotNil(t, dig(svc, "build"), "service %v: compose must build it (no registry has it)", dig(dns, "name"))
	}
}

func flagInt(args []string, name string, def int) int {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			n, err := strconv.Atoi(args[i+1])
			if err == nil {
				return n
			}
		}
	}
	return def
}

// The Dockerfile renders to the file it hands Envoy, and copies the
// renderer it runs.
func TestDockerfileRunsTheRenderedBootstrap(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(raw)
	out := regexp.MustCompile(`ENTRYPOINT \["/usr/local/bin/inferencepool-config", "-out", "([^"]+)", "--", "/docker-entrypoint.sh"\]`).FindStringSubmatch(df)
	require.NotNil(t, out, "ENTRYPOINT")
	require.Contains(t, df, `CMD ["envoy", "-c", "`+out[1]+`"]`)
	require.Contains(t, df, "go build -trimpath -o /out/inferencepool-config ./build/inferencepool-config")
	require.Contains(t, df, "COPY --from=build /out/inferencepool-config /usr/local/bin/inferencepool-config")
	require.Contains(t, df, "GODEBUG=cgocheck=0")
}

// Settings people use: a namespace, no admin, another listener, a pool of
// models with no default (the first pool takes the rest).
func TestRenderOptions(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
listen: 127.0.0.1:8080
admin: "off"
metricsNamespace: inferencepool
pools:
- {name: chat, model: chat-model, servers: ["10.1.0.1:8000"]}
- {name: code, model: code-model, servers: ["vllm-code.svc:8000", "vllm-code.svc:8001"], picker: {prefix: {mode: rendezvous}}}
`), 0o644))
	out, filters, doc := render(t, map[string]string{EnvConfig: cfg, EnvListen: "127.0.0.1:10001"})
	require.EqualValues(t, 10001, dig(doc, "static_resources", "listeners", 0, "address", "socket_address", "port_value"))
	require.Nil(t, doc["admin"])
	require.Contains(t, out, "metrics_namespace: inferencepool")
	require.Equal(t, map[string]any{"mode": "rendezvous"}, pickerPools(t, filters)[1]["prefix"])
	routes := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts", 0, "routes").([]any)
	require.Len(t, routes, 3)
	require.Equal(t, "chat", dig(routes[2], "route", "cluster"), "no pool without a model: the first pool takes the rest")
}

// A fleet of replicas: every pool gossips with the peers the environment
// names (a headless Service), on the peers' port, under the key of a
// Secret (its trailing newline dropped); a pool's other scrape fields stay.
func TestRenderFleet(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
pools:
- {name: chat, model: chat-model, servers: ["10.1.0.1:8000"], picker: {scrape: {interval: 100ms, fleet: {proxies: 4}}}}
- {name: code, servers: ["vllm-code.svc:8000"]}
fleet: {interval: 2ms}
`), 0o644))
	key := "00112233445566778899aabbccddeeff"
	_, filters, _ := render(t, map[string]string{EnvConfig: cfg,
		EnvFleetPeers: "inferencepool-fleet.default.svc.cluster.local:7946", EnvFleetKey: key + "\n"})
	pools := pickerPools(t, filters)
	want := map[string]any{"listen": "0.0.0.0:7946", "peers": []any{"inferencepool-fleet.default.svc.cluster.local:7946"}, "key": key, "interval": "2ms"}
	require.Equal(t, map[string]any{"interval": "100ms", "fleet": map[string]any{"proxies": 4.0, "gossip": want}}, pools[0]["scrape"])
	require.Equal(t, map[string]any{"fleet": map[string]any{"gossip": want}}, pools[1]["scrape"])

	// Without a fleet, no gossip.
	_, filters, _ = render(t, map[string]string{EnvServers: "10.0.0.1:80"})
	require.Nil(t, pickerPools(t, filters)[0]["scrape"])
	// IPv6 peers: listen on every interface of both families.
	_, filters, _ = render(t, map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "[fd00::1]:7946,[fd00::2]:7946"})
	require.Equal(t, "[::]:7946", dig(pickerPools(t, filters)[0], "scrape", "fleet", "gossip", "listen"))
	// A listen address of its own.
	_, filters, _ = render(t, map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "10.0.1.1:7946,10.0.1.2:7947", EnvFleetListen: "0.0.0.0:9000"})
	require.Equal(t, "0.0.0.0:9000", dig(pickerPools(t, filters)[0], "scrape", "fleet", "gossip", "listen"))
}

// oneFilter: ai_router alone, the pools in its endpointPicker and every
// route's pool in its own per-route config (the bootstrap validates: each
// route's pool is one of ai_router's endpointPicker).
func TestRenderOneFilter(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
aiRouter: {costs: [{metadataKey: llm_total_token, type: total}]}
pools:
- {name: chat, model: chat-model, servers: ["10.1.0.1:8000"]}
- {name: code, servers: ["vllm-code.svc:8000"], picker: {engine: sglang}}
`), 0o644))
	out, filters, doc := render(t, map[string]string{EnvConfig: cfg, EnvOneFilter: "true"})
	require.Len(t, filters, 1)
	require.Equal(t, "ai_router", filters[0].FilterName)
	var r struct {
		Costs          []any `json:"costs"`
		EndpointPicker struct {
			Pools []map[string]any `json:"pools"`
		} `json:"endpointPicker"`
	}
	require.NoError(t, json.Unmarshal(filters[0].FilterConfig, &r))
	require.Len(t, r.Costs, 1, "ai_router's own fields stay")
	require.Len(t, r.EndpointPicker.Pools, 2)
	require.Equal(t, "sglang", r.EndpointPicker.Pools[1]["engine"])
	routes := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts", 0, "routes").([]any)
	for i, want := range []string{"chat", "code"} {
		tpf := dig(routes[i], "typed_per_filter_config").(map[string]any)
		require.NotContains(t, tpf, "endpoint_picker")
		require.Equal(t, "ai_router", dig(tpf, "ai_router", "per_route_config_name"))
		require.Equal(t, want, dig(tpf, "ai_router", "filter_config", "value", "pool"))
	}
	require.NotContains(t, out, "filter_name: endpoint_picker")
}

// Every mistake is refused before Envoy starts, naming the field.
func TestRenderRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(body)))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no pools", map[string]string{}, "pools: at least one pool is required"},
		{"no port", map[string]string{EnvServers: "10.0.0.1"}, `pools[0].servers[0]: "10.0.0.1": want host:port`},
		{"bad port", map[string]string{EnvServers: "10.0.0.1:0"}, "port must be 1-65535"},
		{"duplicate", map[string]string{EnvServers: "10.0.0.1:80,10.0.0.1:80"}, `"10.0.0.1:80" is also pools[0].servers[0]`},
		{"two names", map[string]string{EnvServers: "a.svc:80,b.svc:80"}, "IP addresses or one DNS name"},
		{"name and IP", map[string]string{EnvServers: "a.svc:80,10.0.0.1:80"}, "mixes IP addresses and a DNS name"},
		{"listen on a name", map[string]string{EnvServers: "10.0.0.1:80", EnvListen: "localhost:10000"}, "listen: \"localhost:10000\": the address must be an IP"},
		{"bad picker JSON", map[string]string{EnvServers: "10.0.0.1:80", EnvPicker: `{engine`}, EnvPicker + ": not JSON"},
		{"picker owns endpoints", map[string]string{EnvServers: "10.0.0.1:80", EnvPicker: `{"endpoints":{}}`}, "pools[0].picker.endpoints: set by the pool's name and servers"},
		{"picker field the library refuses", map[string]string{EnvServers: "10.0.0.1:80", EnvPicker: `{"engine":"tgi"}`}, "engine"},
		{"ai_router field the library refuses", map[string]string{EnvServers: "10.0.0.1:80", EnvAIRouter: `{"bogus":1}`}, `aiRouter: ai_router filter_config`},
		{"pool without servers", map[string]string{EnvPool: "x"}, EnvPool + " or " + EnvPicker + " without " + EnvServers},
		{"servers twice", map[string]string{EnvConfig: file("pools: [{name: a, servers: ['10.0.0.1:80']}]\n"), EnvServers: "10.0.0.2:80"}, "give the servers in one place"},
		{"unknown file field", map[string]string{EnvConfig: file("poolz: []\n")}, `unknown field "poolz"`},
		{"missing file", map[string]string{EnvConfig: filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"duplicate pool", map[string]string{EnvConfig: file("pools: [{name: a, servers: ['10.0.0.1:80']}, {name: a, servers: ['10.0.0.2:80']}]\n")}, `pools[1].name: "a" twice`},
		{"duplicate model", map[string]string{EnvConfig: file("pools: [{name: a, model: m, servers: ['10.0.0.1:80']}, {name: b, model: m, servers: ['10.0.0.2:80']}]\n")}, `pools[1].model: "m" is also pool "a"'s`},
		{"pseudo-header as endpoint header", map[string]string{EnvServers: "10.0.0.1:80", EnvEndpointHeader: ":path"}, `endpointHeader: ":path"`},
		{"endpoint header with a space", map[string]string{EnvServers: "10.0.0.1:80", EnvEndpointHeader: "a b"}, `endpointHeader: "a b"`},
		{"dotted namespace", map[string]string{EnvServers: "10.0.0.1:80", EnvMetricsNamespace: "my.app"}, `metricsNamespace: "my.app"`},
		{"unnamed pool", map[string]string{EnvConfig: file("pools: [{servers: ['10.0.0.1:80']}]\n")}, "pools[0].name: required"},
		{"fleet key without peers", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetKey: "00112233445566778899aabbccddeeff"}, EnvFleetListen + " or " + EnvFleetKey + " without " + EnvFleetPeers},
		{"fleet peer without a port", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "fleet.svc"}, `fleet.peers[0]: "fleet.svc": want host:port`},
		{"fleet peers on two ports", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "10.0.1.1:7946,10.0.1.2:7947"}, "fleet.listen: required when the peers use different ports"},
		{"fleet listen on a name", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "fleet.svc:7946", EnvFleetListen: "localhost:7946"}, "fleet.listen"},
		{"fleet key too short", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "fleet.svc:7946", EnvFleetKey: "0011"}, "scrape.fleet.gossip.key"},
		{"gossip in two places", map[string]string{EnvServers: "10.0.0.1:80", EnvFleetPeers: "fleet.svc:7946",
			EnvPicker: `{"scrape":{"fleet":{"gossip":{"listen":"0.0.0.0:1","peers":["a:1"]}}}}`}, "pools[0].picker.scrape.fleet.gossip: set by fleet"},
		{"one filter, not a bool", map[string]string{EnvServers: "10.0.0.1:80", EnvOneFilter: "yes please"}, EnvOneFilter + `: "yes please": true or false`},
		{"one filter and an endpointPicker of one's own", map[string]string{EnvServers: "10.0.0.1:80", EnvOneFilter: "1",
			EnvAIRouter: `{"endpointPicker":{"pools":[{"name":"x","endpoints":{"static":["10.0.0.9:1"]}}]}}`}, "aiRouter.endpointPicker: set by pools and oneFilter"},
		{"an endpointPicker of one's own beside endpoint_picker", map[string]string{EnvServers: "10.0.0.1:80",
			EnvAIRouter: `{"endpointPicker":{"pools":[{"name":"x","endpoints":{"static":["10.0.0.9:1"]}}]}}`}, "aiRouter.endpointPicker: set oneFilter instead"},
		{"empty fleet in the file", map[string]string{EnvConfig: file("fleet: {}\npools: [{name: a, servers: ['10.0.0.1:80']}]\n")}, "fleet.peers: the replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.env))
			if err == nil {
				_, err = Render(c)
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// What run writes is what Render returns, and the command after "--" is
// found on PATH (exec itself replaces the process, so it is not run here).
func TestRunWritesTheBootstrap(t *testing.T) {
	t.Setenv(EnvServers, "127.0.0.1:8001")
	t.Setenv(EnvConfig, "")
	out := filepath.Join(t.TempDir(), "sub", "envoy.yaml")
	require.NoError(t, run(out, nil))
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	_, _, err = envoyconfig.ValidateYAML(raw)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "# Rendered by inferencepool-config"))
	require.ErrorContains(t, run(out, []string{"no-such-command-here"}), "executable file not found")
}

// make run's config (build/run.yaml): Envoy on loopback in front of the
// simulator ranks build/run.sh starts, with the demo's endpoint header.
func TestRenderRunConfig(t *testing.T) {
	_, filters, doc := render(t, map[string]string{EnvConfig: "../run.yaml"})
	require.Equal(t, "127.0.0.1", dig(doc, "static_resources", "listeners", 0, "address", "socket_address", "address"))
	require.EqualValues(t, 10000, dig(doc, "static_resources", "listeners", 0, "address", "socket_address", "port_value"))
	require.EqualValues(t, 9901, dig(doc, "admin", "address", "socket_address", "port_value"))
	routes := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts", 0, "routes")
	require.Equal(t, "x-inferencepool-endpoint", dig(routes, 0, "response_headers_to_add", 0, "header", "key"))

	script, err := os.ReadFile("../run.sh")
	require.NoError(t, err)
	m := regexp.MustCompile(`--port (\d+) --data-parallel-size (\d+)`).FindStringSubmatch(string(script))
	require.NotNil(t, m, "run.sh no longer starts the simulator ranks this way")
	port, _ := strconv.Atoi(m[1])
	ranks, _ := strconv.Atoi(m[2])
	var want []any
	for r := 0; r < ranks; r++ {
		want = append(want, fmt.Sprintf("127.0.0.1:%d", port+r))
	}
	require.Equal(t, map[string]any{"static": want}, pickerPools(t, filters)[0]["endpoints"])
	require.Contains(t, string(script), `INFERENCEPOOL_CONFIG=$ROOT/build/run.yaml`)
}

// Whatever a config file says, the renderer refuses it or renders a
// bootstrap that Envoy's protos and the library's parser accept; it never
// panics.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		"pools: [{name: a, servers: ['10.0.0.1:80']}]",
		"pools: [{name: a, model: m, servers: ['sim-a:8000', 'sim-a:8001'], picker: {engine: vllm}}, {name: b, servers: ['[::1]:9']}]",
		"listen: '[::]:10000'\nadmin: 'off'\nmetricsNamespace: x_y\nendpointHeader: x-e\naiRouter: {maxRequestBodyBytes: 1024}\npools: [{name: p, servers: ['h:1']}]",
		`{"pools":[{"name":"a b","servers":["1.2.3.4:5"],"picker":{"saturation":{"queue":1}}}]}`,
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		c, err := Load(env(map[string]string{EnvConfig: p}))
		if err != nil {
			return
		}
		out, err := Render(c)
		if err != nil {
			return
		}
		_, _, err = envoyconfig.ValidateYAML(out)
		require.NoError(t, err, "config:\n%s\nbootstrap:\n%s", body, out)
	})
}

// build/kubernetes/fleet.yaml: the Deployment's environment renders, its
// gossip peers are the headless Service of its own pods on the port that
// Service and the container open, over UDP, and the front Service reaches
// the listener.
func TestKubernetesFleetManifest(t *testing.T) {
	raw, err := os.ReadFile("../kubernetes/fleet.yaml")
	require.NoError(t, err)
	type port struct {
		Name          string `json:"name"`
		Port          int    `json:"port"`
		TargetPort    int    `json:"targetPort"`
		ContainerPort int    `json:"containerPort"`
		Protocol      string `json:"protocol"`
	}
	type doc struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			ClusterIP string          `json:"clusterIP"`
			Selector  json.RawMessage `json:"selector"` // a Service's labels; a Deployment's matchLabels
			Ports     []port          `json:"ports"`
			Template  struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string          `json:"name"`
							Value     string          `json:"value"`
							ValueFrom json.RawMessage `json:"valueFrom"`
						} `json:"env"`
						Ports []port `json:"ports"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	docs := map[string]doc{}
	var deploy doc
	for _, part := range strings.Split(string(raw), "\n---\n") {
		var d doc
		require.NoError(t, yaml.Unmarshal([]byte(part), &d))
		if d.Kind == "Deployment" {
			deploy = d
			continue
		}
		docs[d.Metadata.Name] = d
	}
	require.Len(t, deploy.Spec.Template.Spec.Containers, 1)
	c := deploy.Spec.Template.Spec.Containers[0]
	kv := map[string]string{}
	for _, e := range c.Env {
		kv[e.Name] = e.Value
		if e.Name == EnvFleetKey {
			require.Contains(t, string(e.ValueFrom), "secretKeyRef", "the key comes from a Secret")
			kv[e.Name] = strings.Repeat("ab", 32) + "\n"
		}
	}
	_, filters, _ := render(t, kv)
	gossip := dig(pickerPools(t, filters)[0], "scrape", "fleet", "gossip").(map[string]any)
	host, p, err := net.SplitHostPort(kv[EnvFleetPeers])
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:"+p, gossip["listen"])

	fleet, ok := docs[strings.Split(host, ".")[0]]
	require.True(t, ok, "the peers' name is a Service of the manifest: %s", host)
	require.Equal(t, "None", fleet.Spec.ClusterIP, "headless: the name resolves to every replica")
	labels := func(d doc) map[string]string {
		var m struct {
			MatchLabels map[string]string `json:"matchLabels"`
		}
		require.NoError(t, json.Unmarshal(d.Spec.Selector, &m))
		if d.Kind == "Deployment" {
			return m.MatchLabels
		}
		var l map[string]string
		require.NoError(t, json.Unmarshal(d.Spec.Selector, &l))
		return l
	}
	pods := deploy.Spec.Template.Metadata.Labels
	require.Equal(t, pods, labels(deploy))
	require.Equal(t, pods, labels(fleet))
	require.Len(t, fleet.Spec.Ports, 1)
	require.Equal(t, "UDP", fleet.Spec.Ports[0].Protocol)
	require.Equal(t, p, strconv.Itoa(fleet.Spec.Ports[0].Port))
	require.Equal(t, p, strconv.Itoa(fleet.Spec.Ports[0].TargetPort))
	opened := false
	for _, cp := range c.Ports {
		opened = opened || (cp.Protocol == "UDP" && strconv.Itoa(cp.ContainerPort) == p)
	}
	require.True(t, opened, "the container declares the gossip port")

	front := docs["inferencepool"]
	require.Equal(t, pods, labels(front))
	require.Equal(t, 10000, front.Spec.Ports[0].TargetPort, "the image's default listener")
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"

	"github.com/tidwall/gjson"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"
)

const (
	defaultListen = "0.0.0.0:10000"
	defaultAdmin  = "0.0.0.0:9901"
	// ai_router buffers bodies up to its 4 MiB default: Envoy's own 1 MiB
	// buffer limit would answer 413 first.
	bufferLimit = 8 << 20

	dynamicModuleFilter = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
	dynamicModuleRoute  = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute"
	structType          = "type.googleapis.com/google.protobuf.Struct"
	destinationHeader   = "x-gateway-destination-endpoint"

	// The runtime guard that decides the module's Prometheus names: on,
	// Envoy registers the metrics namespace as a custom stat namespace and
	// strips it (no "envoy_" either). Pinned off so the names are
	// envoy_<namespace>_<stat>, what build/grafana/inferencepool.json queries,
	// whatever the Envoy release's default.
	stripGuard = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix"
)

// Render returns the Envoy bootstrap for c, after checking every part the
// library will parse the way it will parse it.
func Render(c *Config) ([]byte, error) {
	listenHost, listenPort, err := splitAddr("listen", c.Listen, defaultListen)
	if err != nil {
		return nil, err
	}
	if len(c.Pools) == 0 {
		return nil, fmt.Errorf("pools: at least one pool is required (a config file's pools, or %s)", EnvServers)
	}
	aiRouter := json.RawMessage(`{}`)
	if len(c.AIRouter) > 0 {
		aiRouter = c.AIRouter
	}
	if _, err := filterconfig.Parse(filterconfig.AIRouter, aiRouter); err != nil {
		return nil, fmt.Errorf("aiRouter: %w", err)
	}
	if c.EndpointHeader != "" && !headerName.MatchString(c.EndpointHeader) {
		return nil, fmt.Errorf("endpointHeader: %q: a lower-case header name (letters, digits, '-')", c.EndpointHeader)
	}
	if c.MetricsNamespace != "" && !promName.MatchString(c.MetricsNamespace) {
		return nil, fmt.Errorf("metricsNamespace: %q: letters, digits and '_', not starting with a digit (it becomes part of every Prometheus name)", c.MetricsNamespace)
	}
	module := map[string]any{"name": "inferencepool", "do_not_close": true}
	if c.MetricsNamespace != "" {
		module["metrics_namespace"] = c.MetricsNamespace
	}

	gossip, err := fleetGossip(c.Fleet)
	if err != nil {
		return nil, err
	}
	var pickerPools []any
	var clusters, modelRoutes []any
	names := map[string]bool{}
	models := map[string]string{}
	defaultPool := ""
	for i, p := range c.Pools {
		field := fmt.Sprintf("pools[%d]", i)
		if p.Name == "" {
			return nil, fmt.Errorf("%s.name: required", field)
		}
		if names[p.Name] {
			return nil, fmt.Errorf("%s.name: %q twice", field, p.Name)
		}
		names[p.Name] = true
		srv, err := parseServers(field+".servers", p.Servers)
		if err != nil {
			return nil, err
		}
		pool := map[string]any{}
		if len(p.Picker) > 0 {
			if err := json.Unmarshal(p.Picker, &pool); err != nil {
				return nil, fmt.Errorf("%s.picker: %w", field, err)
			}
			for _, owned := range []string{"name", "endpoints"} {
				if _, ok := pool[owned]; ok {
					return nil, fmt.Errorf("%s.picker.%s: set by the pool's name and servers", field, owned)
				}
			}
		}
		if gossip != nil {
			if err := addGossip(pool, gossip); err != nil {
				return nil, fmt.Errorf("%s.picker.%w", field, err)
			}
		}
		pool["name"] = p.Name
		if srv.dnsName != "" {
			pool["endpoints"] = map[string]any{"dns": map[string]any{"name": srv.dnsName, "ports": srv.ports}}
		} else {
			pool["endpoints"] = map[string]any{"static": srv.ips}
		}
		pickerPools = append(pickerPools, pool)
		clusters = append(clusters, cluster(clusterName(p.Name), srv))

		if p.Model == "" {
			if defaultPool == "" {
				defaultPool = p.Name
			}
			continue
		}
		if other, dup := models[p.Model]; dup {
			return nil, fmt.Errorf("%s.model: %q is also pool %q's", field, p.Model, other)
		}
		models[p.Model] = p.Name
		modelRoutes = append(modelRoutes, route(p.Name, map[string]any{
			"prefix":  "/",
			"headers": []any{map[string]any{"name": "x-ai-eg-model", "string_match": map[string]any{"exact": p.Model}}},
		}, module, c.EndpointHeader))
	}
	if defaultPool == "" {
		defaultPool = c.Pools[0].Name
	}
	picker, err := json.Marshal(map[string]any{"pools": pickerPools})
	if err != nil {
		return nil, err
	}
	if _, err := filterconfig.Parse(filterconfig.EndpointPicker, picker); err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	pickerFilter := filterconfig.EndpointPicker
	if !c.OneFilter && gjson.GetBytes(aiRouter, filterconfig.RouterPicker).Exists() {
		// ai_router would pick, and endpoint_picker after it again.
		return nil, fmt.Errorf("aiRouter.%s: set oneFilter instead (the pools become it)", filterconfig.RouterPicker)
	}
	if c.OneFilter {
		// ai_router picks too: the pools go into its endpointPicker, and the
		// routes' pools into its per-route config.
		var r map[string]any
		if err := json.Unmarshal(aiRouter, &r); err != nil || r == nil {
			return nil, fmt.Errorf("aiRouter: want a JSON object")
		}
		if _, set := r[filterconfig.RouterPicker]; set {
			return nil, fmt.Errorf("aiRouter.%s: set by pools and oneFilter", filterconfig.RouterPicker)
		}
		r[filterconfig.RouterPicker] = json.RawMessage(picker)
		if aiRouter, err = json.Marshal(r); err != nil {
			return nil, err
		}
		if _, err := filterconfig.Parse(filterconfig.AIRouter, aiRouter); err != nil {
			return nil, fmt.Errorf("aiRouter: %w", err)
		}
		pickerFilter = filterconfig.AIRouter
	}
	for _, r := range modelRoutes {
		perRouteFilter(r.(map[string]any), pickerFilter)
	}
	routes := append(modelRoutes, perRouteFilter(route(defaultPool, map[string]any{"prefix": "/"}, module, c.EndpointHeader), pickerFilter))

	filter := func(name string, config json.RawMessage) map[string]any {
		var v any
		if err := json.Unmarshal(config, &v); err != nil {
			panic(err) // checked above
		}
		return map[string]any{"name": name, "typed_config": map[string]any{
			"@type":                 dynamicModuleFilter,
			"dynamic_module_config": module,
			"filter_name":           name,
			"filter_config":         map[string]any{"@type": structType, "value": v},
		}}
	}
	hcm := map[string]any{
		"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix": "inference",
		"route_config": map[string]any{"name": "inference", "virtual_hosts": []any{map[string]any{
			"name": "inference", "domains": []any{"*"}, "routes": routes,
		}}},
		"http_filters": httpFilters(filter(filterconfig.AIRouter, aiRouter), filter(filterconfig.EndpointPicker, picker), c.OneFilter),
	}
	bootstrap := map[string]any{
		"static_resources": map[string]any{
			"listeners": []any{map[string]any{
				"name":                              "inference",
				"address":                           socketAddress(listenHost, listenPort),
				"per_connection_buffer_limit_bytes": bufferLimit,
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm,
				}}}},
			}},
			"clusters": clusters,
		},
		"stats_config": map[string]any{"histogram_bucket_settings": histogramBuckets()},
		"layered_runtime": map[string]any{"layers": []any{
			map[string]any{"name": "static", "static_layer": map[string]any{stripGuard: false}},
			map[string]any{"name": "admin", "admin_layer": map[string]any{}},
		}},
	}
	if c.Admin != "off" {
		host, port, err := splitAddr("admin", c.Admin, defaultAdmin)
		if err != nil {
			return nil, err
		}
		bootstrap["admin"] = map[string]any{"address": socketAddress(host, port)}
	}
	out, err := yaml.Marshal(bootstrap)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Rendered by inferencepool-config (build/inferencepool-config) from its\n")
	b.WriteString("# config file and INFERENCEPOOL_* environment: edit those, not this file.\n")
	b.Write(out)
	return b.Bytes(), nil
}

// fleetGossip is endpoint_picker's scrape.fleet.gossip for f (nil: no
// fleet): the listen address defaults to every interface on the peers'
// port. The picker checks the rest when the pools are parsed.
func fleetGossip(f *Fleet) (map[string]any, error) {
	if f == nil {
		return nil, nil
	}
	if len(f.Peers) == 0 {
		return nil, fmt.Errorf("fleet.peers: the replicas as host:port (a headless Service's name resolves to all of them), or no fleet")
	}
	listen := f.Listen
	if listen == "" {
		port, any := "", "0.0.0.0"
		for i, p := range f.Peers {
			host, pp, err := net.SplitHostPort(p)
			if err != nil {
				return nil, fmt.Errorf("fleet.peers[%d]: %q: want host:port", i, p)
			}
			if port != "" && pp != port {
				return nil, fmt.Errorf("fleet.listen: required when the peers use different ports (%s and %s)", port, pp)
			}
			port = pp
			if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
				any = "::" // IPv6 peers: every interface, both families
			}
		}
		listen = net.JoinHostPort(any, port)
	}
	if _, _, err := splitAddr("fleet.listen", listen, ""); err != nil {
		return nil, err
	}
	g := map[string]any{"listen": listen, "peers": f.Peers}
	if f.Key != "" {
		g["key"] = f.Key
	}
	if f.Interval != "" {
		g["interval"] = f.Interval
	}
	return g, nil
}

// addGossip sets pool's scrape.fleet.gossip, keeping its other scrape
// fields; a pool whose picker fields set gossip themselves is refused.
func addGossip(pool map[string]any, gossip map[string]any) error {
	scrape, ok := pool["scrape"].(map[string]any)
	if !ok && pool["scrape"] != nil {
		return fmt.Errorf("scrape: want an object")
	}
	if scrape == nil {
		scrape = map[string]any{}
	}
	fleet, ok := scrape["fleet"].(map[string]any)
	if !ok && scrape["fleet"] != nil {
		return fmt.Errorf("scrape.fleet: want an object")
	}
	if fleet == nil {
		fleet = map[string]any{}
	}
	if _, set := fleet["gossip"]; set {
		return fmt.Errorf("scrape.fleet.gossip: set by fleet (give it in one place)")
	}
	fleet["gossip"] = gossip
	scrape["fleet"] = fleet
	pool["scrape"] = scrape
	return nil
}

var (
	headerName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	promName   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func clusterName(pool string) string { return pool }

// httpFilters is the chain: ai_router, endpoint_picker (unless ai_router
// picks too) and Envoy's router.
func httpFilters(aiRouter, endpointPicker map[string]any, oneFilter bool) []any {
	chain := []any{aiRouter}
	if !oneFilter {
		chain = append(chain, endpointPicker)
	}
	return append(chain, map[string]any{"name": "envoy.filters.http.router", "typed_config": map[string]any{
		"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

// perRouteFilter moves route r's per-route pool config to the filter that
// picks (endpoint_picker's, else ai_router's), and returns r.
func perRouteFilter(r map[string]any, filter string) map[string]any {
	tpf := r["typed_per_filter_config"].(map[string]any)
	cfg := tpf[filterconfig.EndpointPicker].(map[string]any)
	if filter != filterconfig.EndpointPicker {
		delete(tpf, filterconfig.EndpointPicker)
		cfg["per_route_config_name"] = filter
		tpf[filter] = cfg
	}
	return r
}

// route sends matching requests to the pool's cluster, naming the pool for
// endpoint_picker, with a retry policy whose retries walk the picker's list.
func route(pool string, match map[string]any, module map[string]any, endpointHeader string) map[string]any {
	perRoute, _ := json.Marshal(map[string]any{"pool": pool})
	var v any
	_ = json.Unmarshal(perRoute, &v)
	r := map[string]any{
		"match": match,
		"route": map[string]any{
			"cluster": clusterName(pool),
			"timeout": "300s",
			"retry_policy": map[string]any{
				"retry_on":               "connect-failure,reset,retriable-status-codes",
				"retriable_status_codes": []any{500, 502, 503, 504},
				"num_retries":            2,
			},
		},
		"typed_per_filter_config": map[string]any{filterconfig.EndpointPicker: map[string]any{
			"@type":                 dynamicModuleRoute,
			"dynamic_module_config": module,
			"per_route_config_name": filterconfig.EndpointPicker,
			"filter_config":         map[string]any{"@type": structType, "value": v},
		}},
	}
	if endpointHeader != "" {
		r["response_headers_to_add"] = []any{map[string]any{
			"header":        map[string]any{"key": endpointHeader, "value": "%UPSTREAM_REMOTE_ADDRESS%"},
			"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
		}}
	}
	return r
}

// cluster is a pool's servers as Envoy's cluster, routed by override_host:
// the picker's list first (header, then envoy.lb metadata), round robin when
// no entry is a host of the cluster.
func cluster(name string, s *servers) map[string]any {
	var endpoints []any
	for _, a := range s.addrs {
		endpoints = append(endpoints, map[string]any{"endpoint": map[string]any{"address": socketAddress(a.host, a.port)}})
	}
	typ := "STATIC"
	if s.dnsName != "" {
		typ = "STRICT_DNS"
	}
	return map[string]any{
		"name":                              name,
		"type":                              typ,
		"connect_timeout":                   "1s",
		"per_connection_buffer_limit_bytes": bufferLimit,
		"load_assignment":                   map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{"lb_endpoints": endpoints}}},
		"load_balancing_policy": map[string]any{"policies": []any{map[string]any{"typed_extension_config": map[string]any{
			"name": "envoy.load_balancing_policies.override_host",
			"typed_config": map[string]any{
				"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost",
				"override_host_sources": []any{
					map[string]any{"header": destinationHeader},
					map[string]any{"metadata": map[string]any{"key": "envoy.lb", "path": []any{map[string]any{"key": destinationHeader}}}},
				},
				"fallback_policy": map[string]any{"policies": []any{map[string]any{"typed_extension_config": map[string]any{
					"name":         "envoy.load_balancing_policies.round_robin",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"},
				}}}},
			},
		}}}},
	}
}

// histogramBuckets fit the module's histograms. Envoy's default buckets end
// at 3,600,000 (one hour in ms): the durations are microseconds (3.6 s) and
// token counts run past them, so quantiles would stick at the last bucket.
func histogramBuckets() []any {
	us := []any{1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1e6, 2.5e6, 5e6, 1e7, 3e7, 6e7, 1.2e8, 3e8}
	return []any{
		map[string]any{"match": map[string]any{"contains": "gen_ai.server."}, "buckets": us},
		map[string]any{"match": map[string]any{"contains": "gen_ai.client.token.usage"},
			"buckets": []any{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576}},
		map[string]any{"match": map[string]any{"contains": "endpoint_picker.pick_duration_us"},
			"buckets": []any{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000}},
	}
}

func socketAddress(host string, port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}}
}

func splitAddr(field, v, def string) (string, int, error) {
	if v == "" {
		v = def
	}
	host, portStr, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %q: want address:port", field, v)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%s: %q: port must be 1-65535", field, v)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%s: %q: the address must be an IP (0.0.0.0 for every interface)", field, v)
	}
	return host, port, nil
}

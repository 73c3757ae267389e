package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"sigs.k8s.io/yaml"
)

// Filter is one dynamic-module filter of the chain: its filter_name and the
// bytes Envoy hands the module as filter_config (a google.protobuf.Struct as
// JSON, a google.protobuf.StringValue raw).
type Filter struct {
	Name   string
	Config []byte
}

// Chain is the ordered list of dynamic-module filters before the router.
type Chain []Filter

const (
	dynamicModuleFilterType = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
	hcmType                 = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	structType              = "type.googleapis.com/google.protobuf.Struct"
	stringValueType         = "type.googleapis.com/google.protobuf.StringValue"
)

// EnvoyChain reads the repository's envoy.yaml and returns its chain.
func EnvoyChain(t testing.TB) Chain {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadChain(filepath.Join(root, "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// LoadChain takes, from the first HTTP connection manager of an Envoy
// bootstrap file that has any, the http_filters of type
// DynamicModuleFilter, in order.
func LoadChain(path string) (Chain, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadChainYAML(path, b)
}

// LoadChainYAML is LoadChain of a bootstrap's bytes; name is for errors.
func LoadChainYAML(name string, data []byte) (Chain, error) {
	hcms, err := connectionManagers(name, data)
	if err != nil {
		return nil, err
	}
	for _, tc := range hcms {
		var c Chain
		for _, hf := range list(tc["http_filters"]) {
			ftc, _ := field(hf, "typed_config").(map[string]any)
			if ftc == nil || ftc["@type"] != dynamicModuleFilterType {
				continue
			}
			f, err := filterOf(ftc)
			if err != nil {
				return nil, fmt.Errorf("%s: http filter %v: %w", name, field(hf, "name"), err)
			}
			c = append(c, f)
		}
		if len(c) > 0 {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%s: no DynamicModuleFilter in any http_connection_manager", name)
}

// connectionManagers returns the typed_config of every HTTP connection
// manager of a bootstrap's static listeners, in order.
func connectionManagers(name string, data []byte) ([]map[string]any, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []map[string]any
	for _, l := range list(field(doc, "static_resources", "listeners")) {
		for _, fc := range list(field(l, "filter_chains")) {
			for _, nf := range list(field(fc, "filters")) {
				if tc, _ := field(nf, "typed_config").(map[string]any); tc != nil && tc["@type"] == hcmType {
					out = append(out, tc)
				}
			}
		}
	}
	return out, nil
}

func filterOf(tc map[string]any) (Filter, error) {
	name, _ := tc["filter_name"].(string)
	if name == "" {
		return Filter{}, fmt.Errorf("no filter_name")
	}
	cfg, err := filterConfigOf(tc)
	return Filter{Name: name, Config: cfg}, err
}

// filterConfigOf is what Envoy hands the module for a (per-route) filter's
// filter_config.
func filterConfigOf(tc map[string]any) ([]byte, error) {
	fc, ok := tc["filter_config"].(map[string]any)
	if !ok {
		return nil, nil
	}
	switch fc["@type"] {
	case structType:
		v := fc["value"]
		if v == nil {
			v = map[string]any{}
		}
		return json.Marshal(v)
	case stringValueType:
		s, _ := fc["value"].(string)
		return []byte(s), nil
	default:
		return nil, fmt.Errorf("filter_config of type %v: abihost passes Struct (as JSON) and StringValue (raw)", fc["@type"])
	}
}

// With returns a copy of the chain with filter name's config replaced.
func (c Chain) With(name string, config []byte) Chain {
	out := append(Chain(nil), c...)
	for i := range out {
		if out[i].Name == name {
			out[i].Config = config
			return out
		}
	}
	panic(fmt.Sprintf("harness: chain has no filter %q", name))
}

// WithJSON is With of a value marshalled as JSON (what a Struct becomes).
func (c Chain) WithJSON(name string, v any) Chain {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return c.With(name, b)
}

// WithMerged returns a copy of the chain where filter name's JSON config has
// the top-level fields of patch set (others kept), e.g. to add a "debug"
// object or point one field at test servers.
func (c Chain) WithMerged(name string, patch map[string]any) Chain {
	for _, f := range c {
		if f.Name != name {
			continue
		}
		cfg := map[string]any{}
		if len(bytes.TrimSpace(f.Config)) > 0 {
			if err := json.Unmarshal(f.Config, &cfg); err != nil {
				panic(fmt.Sprintf("harness: %s's filter_config is not a JSON object: %v", name, err))
			}
		}
		for k, v := range patch {
			cfg[k] = v
		}
		return c.WithJSON(name, cfg)
	}
	panic(fmt.Sprintf("harness: chain has no filter %q", name))
}

// Only returns the sub-chain of the named filters, in chain order.
func (c Chain) Only(names ...string) Chain {
	var out Chain
	for _, f := range c {
		for _, n := range names {
			if f.Name == n {
				out = append(out, f)
			}
		}
	}
	return out
}

// ClusterHosts returns the ip:port endpoints of a cluster in envoy.yaml's
// static_resources (STATIC load_assignment).
func ClusterHosts(path, cluster string) ([]string, error) {
	doc, err := loadYAML(path)
	if err != nil {
		return nil, err
	}
	for _, c := range list(field(doc, "static_resources", "clusters")) {
		if field(c, "name") != cluster {
			continue
		}
		var out []string
		for _, le := range list(field(c, "load_assignment", "endpoints")) {
			for _, ep := range list(field(le, "lb_endpoints")) {
				sa := field(ep, "endpoint", "address", "socket_address")
				addr, _ := field(sa, "address").(string)
				port := field(sa, "port_value")
				var p int
				switch v := port.(type) {
				case float64:
					p = int(v)
				case string:
					p, _ = strconv.Atoi(v)
				}
				out = append(out, net.JoinHostPort(addr, strconv.Itoa(p)))
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no cluster %q", path, cluster)
}

func loadYAML(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc, nil
}

func field(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

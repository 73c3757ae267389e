package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Route is one entry of the route table abihost gives streams, as Envoy's
// RouteConfiguration would: it matches every request, or those whose request
// header Header equals Value. The first matching route wins. As in Envoy,
// the route is matched when the request headers arrive, before the first
// filter runs, and matched again (on the headers as filters left them) only
// after a filter clears the route cache, as ai_router does with
// x-ai-eg-model: a header removed without clearing the cache has still
// decided the route.
type Route struct {
	Name   string
	Header string // "" matches every request
	Value  string
	// Cluster is the route's cluster name, reported back in
	// Event.Cluster and StreamState.Cluster.
	Cluster string
	// PerFilter is the route's typed_per_filter_config: per chain filter
	// (by filter_name), the DynamicModuleFilterPerRouteConfig's
	// filter_config. Its per_route_config_name is the filter_name too.
	PerFilter map[string][]byte
}

// PerFilterJSON returns a PerFilter entry of v marshalled as JSON (what a
// google.protobuf.Struct filter_config becomes).
func PerFilterJSON(filter string, v any) map[string][]byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return map[string][]byte{filter: b}
}

// ConfigureRoutes installs the route table for streams opened from now on.
// A per-route config the module refuses fails the whole table, with what the
// module logged, as Envoy rejects such a route configuration.
func (h *Host) ConfigureRoutes(routes ...Route) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := h.call(ctx, "routes", routesArgs(routes)...)
	return err
}

// routesArgs are the routes command's arguments (PROTOCOL.md), for the
// protocol and for bench mode's setup file.
func routesArgs(routes []Route) []string {
	args := []string{strconv.Itoa(len(routes))}
	for _, r := range routes {
		hk, hv := "-", "-"
		if r.Header != "" {
			hk, hv = b64s(r.Header), b64s(r.Value)
		}
		args = append(args, b64s(r.Name), hk, hv, b64s(r.Cluster), strconv.Itoa(len(r.PerFilter)))
		for filter, cfg := range r.PerFilter {
			args = append(args, b64s(filter), b64s(filter), b64(cfg))
		}
	}
	return args
}

// MustConfigureRoutes is ConfigureRoutes failing the test on error.
func (h *Host) MustConfigureRoutes(routes ...Route) {
	h.t.Helper()
	if err := h.ConfigureRoutes(routes...); err != nil {
		h.t.Fatal(err)
	}
}

// LoadRoutesYAML takes, from the first HTTP connection manager of an Envoy
// bootstrap, the routes of its first virtual host: their exact header match
// (one at most; abihost matches nothing richer) and their
// typed_per_filter_config for our dynamic-module filters, keyed by the
// filter_name of the http_filter the config is for. name is for errors.
func LoadRoutesYAML(name string, data []byte) ([]Route, error) {
	hcms, err := connectionManagers(name, data)
	if err != nil {
		return nil, err
	}
	for _, tc := range hcms {
		vhosts := list(field(tc, "route_config", "virtual_hosts"))
		if len(vhosts) == 0 {
			continue
		}
		// typed_per_filter_config is keyed by the HCM filter name.
		filterName := map[string]string{}
		for _, hf := range list(tc["http_filters"]) {
			hcmName, _ := field(hf, "name").(string)
			if fn, ok := field(hf, "typed_config", "filter_name").(string); ok {
				filterName[hcmName] = fn
			}
		}
		var out []Route
		for i, r := range list(field(vhosts[0], "routes")) {
			route, err := routeOf(r, filterName)
			if err != nil {
				return nil, fmt.Errorf("%s: route %d: %w", name, i, err)
			}
			out = append(out, route)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no http_connection_manager with a virtual host", name)
}

func routeOf(r any, filterName map[string]string) (Route, error) {
	out := Route{PerFilter: map[string][]byte{}}
	out.Name, _ = field(r, "name").(string)
	out.Cluster, _ = field(r, "route", "cluster").(string)
	switch hs := list(field(r, "match", "headers")); len(hs) {
	case 0:
	case 1:
		exact, ok := field(hs[0], "string_match", "exact").(string)
		if !ok {
			return out, fmt.Errorf("header match other than string_match.exact")
		}
		out.Header, _ = field(hs[0], "name").(string)
		out.Value = exact
	default:
		return out, fmt.Errorf("more than one header match")
	}
	perFilter, _ := field(r, "typed_per_filter_config").(map[string]any)
	for hcmName, v := range perFilter {
		fn, ok := filterName[hcmName]
		if !ok {
			return out, fmt.Errorf("typed_per_filter_config %q is not one of our http_filters", hcmName)
		}
		m, _ := v.(map[string]any)
		cfg, err := filterConfigOf(m)
		if err != nil {
			return out, err
		}
		out.PerFilter[fn] = cfg
	}
	return out, nil
}

// Package envoyconfig validates Envoy configs the way Envoy v1.39 would load
// them, without an Envoy binary: protojson into the v3 Bootstrap proto with
// every typed config resolved, protoc-gen-validate rules on the bootstrap
// and on every Any inside it (ValidateAll does not descend into Any), and
// each dynamic-module filter_config through the library's own parser.
package envoyconfig

import (
	"errors"
	"fmt"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/envoy-inferencepool/envoy-inferencepool/module/filterconfig"

	// Typed configs our configs use; importing registers them for protojson.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_to_metadata/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// ModuleName is the dynamic module name our configs must load.
const ModuleName = "inferencepool"

// DynamicModuleFilter is one of our filters as configured in a bootstrap.
type DynamicModuleFilter struct {
	FilterName   string
	FilterConfig []byte // what the library receives: Struct as JSON, StringValue raw
}

// ValidateFile validates the bootstrap YAML at path.
func ValidateFile(path string) (*bootstrapv3.Bootstrap, []DynamicModuleFilter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ValidateYAML(data)
}

// ValidateYAML validates a bootstrap and returns our filters in chain order.
func ValidateYAML(data []byte) (*bootstrapv3.Bootstrap, []DynamicModuleFilter, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	w := &walker{pools: map[string]map[string]bool{}}
	w.message(b.ProtoReflect(), "bootstrap")
	w.checkRoutePools()
	return b, w.filters, errors.Join(w.errs...)
}

type walker struct {
	errs    []error
	filters []DynamicModuleFilter
	pools   map[string]map[string]bool // filter_name → its pool names (endpoint_picker's, ai_router's endpointPicker)
	routes  []routePool                // every per-route pool choice
}

type routePool struct{ path, filter, pool string }

// checkRoutePools refuses a route that names a pool its filter does not
// have: endpoint_picker's per-route config a pool of no endpoint_picker,
// ai_router's one of no ai_router's endpointPicker. Envoy cannot see this
// (per-route and filter configs load apart); the picker would answer that
// route's requests 503.
func (w *walker) checkRoutePools() {
	for _, r := range w.routes {
		if w.pools[r.filter][r.pool] {
			continue
		}
		if r.filter == filterconfig.AIRouter {
			w.errs = append(w.errs, fmt.Errorf("%s: per-route pool %q is not a pool of any ai_router's %s", r.path, r.pool, filterconfig.RouterPicker))
			continue
		}
		w.errs = append(w.errs, fmt.Errorf("%s: per-route pool %q is not a pool of any endpoint_picker", r.path, r.pool))
	}
}

type validator interface{ ValidateAll() error }

// message visits every field of m, unpacking and validating each Any.
func (w *walker) message(m protoreflect.Message, path string) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		w.any(a, path)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.message(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				w.message(mv.Message(), fmt.Sprintf("%s[%v]", p, k.Interface()))
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			w.message(v.Message(), p)
		}
		return true
	})
}

func (w *walker) any(a *anypb.Any, path string) {
	inner, err := a.UnmarshalNew()
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %s: %w", path, a.GetTypeUrl(), err))
		return
	}
	if v, ok := inner.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			w.errs = append(w.errs, fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err))
		}
	}
	switch f := inner.(type) {
	case *dynmodv3.DynamicModuleFilter:
		w.dynamicModule(f, path)
		return // filter_config is the library's, not Envoy's
	case *dynmodv3.DynamicModuleFilterPerRoute:
		w.dynamicModulePerRoute(f, path)
		return
	}
	w.message(inner.ProtoReflect(), path)
}

func (w *walker) dynamicModule(f *dynmodv3.DynamicModuleFilter, path string) {
	if got := f.GetDynamicModuleConfig().GetName(); got != ModuleName {
		w.errs = append(w.errs, fmt.Errorf("%s.dynamic_module_config.name: %q, want %q (libinferencepool.so)", path, got, ModuleName))
		return
	}
	raw, err := FilterConfigBytes(f.GetFilterConfig())
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s.filter_config: %w", path, err))
		return
	}
	parsed, err := filterconfig.Parse(f.GetFilterName(), raw)
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %w", path, err))
		return
	}
	if parsed.EndpointPicker != nil {
		name := f.GetFilterName()
		if w.pools[name] == nil {
			w.pools[name] = map[string]bool{}
		}
		for _, p := range parsed.EndpointPicker.Pools {
			w.pools[name][p.Name] = true
		}
	}
	w.filters = append(w.filters, DynamicModuleFilter{FilterName: f.GetFilterName(), FilterConfig: raw})
}

// dynamicModulePerRoute checks a route's typed_per_filter_config for one of
// our filters. The filter is named by filter_name, or by the older
// per_route_config_name (which Envoy uses when filter_name is empty).
func (w *walker) dynamicModulePerRoute(f *dynmodv3.DynamicModuleFilterPerRoute, path string) {
	if got := f.GetDynamicModuleConfig().GetName(); got != ModuleName {
		w.errs = append(w.errs, fmt.Errorf("%s.dynamic_module_config.name: %q, want %q (libinferencepool.so)", path, got, ModuleName))
		return
	}
	name := f.GetFilterName()
	if name == "" {
		// Envoy v1.39 still reads per_route_config_name (newer protos
		// deprecate it for filter_name); configs written for it must pass.
		//lint:ignore SA1019 read on purpose, see above
		name = f.GetPerRouteConfigName()
	}
	raw, err := FilterConfigBytes(f.GetFilterConfig())
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s.filter_config: %w", path, err))
		return
	}
	rc, err := filterconfig.ParsePerRoute(name, raw)
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %w", path, err))
		return
	}
	w.routes = append(w.routes, routePool{path: path, filter: name, pool: rc.Pool})
}

// FilterConfigBytes is what Envoy hands the module for a filter_config Any:
// a Struct as JSON, a StringValue or BytesValue raw.
func FilterConfigBytes(a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, err
	}
	switch v := m.(type) {
	case *structpb.Struct:
		return protojson.Marshal(v)
	case *wrapperspb.StringValue:
		return []byte(v.GetValue()), nil
	case *wrapperspb.BytesValue:
		return v.GetValue(), nil
	default:
		return nil, fmt.Errorf("unsupported type %s: use google.protobuf.Struct or StringValue", proto.MessageName(m))
	}
}

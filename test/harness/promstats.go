package harness

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// PromNaming is how Envoy's /stats/prometheus spells a dynamic module's stat
// (source/server/admin/prometheus_stats.cc, PrometheusStatsFormatter::metricName):
// the stat is created as "<metrics_namespace>.<name>" with the module's
// labels as tags; every character outside [a-zA-Z0-9_] becomes "_", in names
// and tag names. When the namespace is registered as a custom stat namespace
// (runtime guard envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix
// on), it is stripped and no "envoy_" is added; otherwise the name is
// "envoy_" + the sanitized full name. Counters keep their name (no _total);
// histograms are <name>_bucket (with le), _sum and _count.
type PromNaming struct {
	Namespace string
	Strip     bool
}

// DefaultPromNamings are the two spellings of the module's stats under
// Envoy's default namespace: runtime guard off, then on.
var DefaultPromNamings = []PromNaming{{Namespace: "dynamicmodulescustom"}, {Namespace: "dynamicmodulescustom", Strip: true}}

var promInvalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// PromSanitize is a stat or tag name as Envoy's Prometheus output writes it.
func PromSanitize(s string) string { return promInvalid.ReplaceAllString(s, "_") }

// Prefix is what comes before the sanitized stat name.
func (n PromNaming) Prefix() string {
	if n.Strip {
		return ""
	}
	return "envoy_" + PromSanitize(n.Namespace) + "_"
}

// Series maps every Prometheus series name to its label names.
func (n PromNaming) Series(defs []MetricDef) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, d := range defs {
		labels := map[string]bool{}
		for _, l := range d.Labels {
			labels[PromSanitize(l)] = true
		}
		base := n.Prefix() + PromSanitize(d.Name)
		if d.Kind != "histogram" {
			out[base] = labels
			continue
		}
		withLe := map[string]bool{"le": true}
		for l := range labels {
			withLe[l] = true
		}
		out[base+"_bucket"] = withLe
		out[base+"_sum"] = labels
		out[base+"_count"] = labels
	}
	return out
}

// PromStats is a real Envoy's /stats/prometheus, read with the module's
// stat names: the real-Envoy counterpart of Stats.
type PromStats struct {
	families map[string]*dto.MetricFamily
}

// ParsePromStats reads Envoy's Prometheus text output.
func ParsePromStats(r io.Reader) (*PromStats, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("/stats/prometheus: %w", err)
	}
	return &PromStats{families: fams}, nil
}

// family finds a module stat (its dotted name) under either default
// spelling, or an Envoy stat under its Prometheus name (envoy_cluster_...).
func (s *PromStats) family(name string) *dto.MetricFamily {
	if f := s.families[name]; f != nil {
		return f
	}
	for _, n := range DefaultPromNamings {
		if f := s.families[n.Prefix()+PromSanitize(name)]; f != nil {
			return f
		}
	}
	return nil
}

// matching are the series of f whose labels include every tag (key, value
// pairs, dotted tag names as the module defines them).
func matching(f *dto.MetricFamily, tags []string) []*dto.Metric {
	if len(tags)%2 != 0 {
		panic("harness: tags are key, value pairs")
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i < len(tags); i += 2 {
			if v, has := labels[PromSanitize(tags[i])]; !has || v != tags[i+1] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// Counter is the sum of the counter's series whose tags include these (false
// when no series matches).
func (s *PromStats) Counter(name string, tags ...string) (uint64, bool) {
	return s.value(name, tags, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() + m.GetUntyped().GetValue() })
}

// Gauge is Counter for gauges.
func (s *PromStats) Gauge(name string, tags ...string) (uint64, bool) {
	return s.value(name, tags, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() + m.GetUntyped().GetValue() })
}

// HistogramCount is the number of samples of the histogram's series whose
// tags include these.
func (s *PromStats) HistogramCount(name string, tags ...string) (uint64, bool) {
	return s.value(name, tags, func(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) })
}

func (s *PromStats) value(name string, tags []string, v func(*dto.Metric) float64) (uint64, bool) {
	f := s.family(name)
	if f == nil {
		return 0, false
	}
	ms := matching(f, tags)
	var sum float64
	for _, m := range ms {
		sum += v(m)
	}
	return uint64(sum), len(ms) > 0
}

// String lists the families, for failure messages.
func (s *PromStats) String() string {
	var names []string
	for n, f := range s.families {
		names = append(names, fmt.Sprintf("%s (%d series)", n, len(f.GetMetric())))
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

package picker

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/filter/saturation"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
)

// Config is the endpoint_picker filter_config: a list of pools. README.md
// documents every field and its default.
type Config struct {
	Pools []PoolConfig `json:"pools"`
}

// PoolConfig is one InferencePool: where its endpoints come from, how their
// metrics are read and how requests are scheduled across them.
type PoolConfig struct {
	Name            string           `json:"name"`
	Endpoints       EndpointsConfig  `json:"endpoints"`
	Engine          string           `json:"engine,omitempty"`
	Metrics         MetricsConfig    `json:"metrics,omitzero"`
	Scrape          ScrapeConfig     `json:"scrape,omitzero"`
	Scheduler       SchedulerConfig  `json:"scheduler,omitzero"`
	Prefix          PrefixConfig     `json:"prefix,omitzero"`     // the prefix-cache scorer's own parameters
	Saturation      SaturationConfig `json:"saturation,omitzero"` // the saturation filter's own parameters
	Probe           ProbeConfig      `json:"probe,omitzero"`      // pick-time probing (probe.go)
	FailurePenalty  *Duration        `json:"failurePenalty,omitempty"`
	FailureMode     string           `json:"failureMode,omitempty"`
	Priorities      map[string]int   `json:"priorities,omitempty"`
	DefaultPriority int              `json:"defaultPriority,omitempty"`
}

// EndpointsConfig names exactly one endpoint source.
type EndpointsConfig struct {
	Static []string    `json:"static,omitempty"`
	DNS    *DNSConfig  `json:"dns,omitempty"`
	File   *FileConfig `json:"file,omitempty"`
}

// DNSConfig resolves Name every Interval; each address with each port is an
// endpoint.
type DNSConfig struct {
	Name     string   `json:"name"`
	Ports    []int    `json:"ports"`
	Interval Duration `json:"interval,omitzero"`
}

// FileConfig reads a JSON or YAML list of ip:port, checked for changes every
// Interval.
type FileConfig struct {
	Path     string   `json:"path"`
	Interval Duration `json:"interval,omitzero"`
}

// MetricsConfig overrides the engine's metric family names.
type MetricsConfig struct {
	Waiting      string `json:"waiting,omitempty"`
	Running      string `json:"running,omitempty"`
	KVCacheUsage string `json:"kvCacheUsage,omitempty"`
	LoRAInfo     string `json:"loraInfo,omitempty"`
	CacheConfig  string `json:"cacheConfig,omitempty"`
}

// ScrapeConfig sets how endpoints' metrics are scraped.
type ScrapeConfig struct {
	Path           string   `json:"path,omitempty"`
	Interval       Duration `json:"interval,omitzero"`
	Timeout        Duration `json:"timeout,omitzero"`
	Concurrency    int      `json:"concurrency,omitempty"`
	StaleAfter     Duration `json:"staleAfter,omitzero"`
	UnhealthyAfter int      `json:"unhealthyAfter,omitempty"`
	MaxBytes       int64    `json:"maxBytes,omitempty"`
	// FilterByName asks the server for only the families read (name[]);
	// nil means true.
	FilterByName *bool `json:"filterByName,omitempty"`
	// The collector's schedule: jitter and the fleet's bound on each
	// server's scrape load (collector.Schedule owns and checks them).
	Jitter *float64        `json:"jitter,omitempty"`
	Fleet  collector.Fleet `json:"fleet,omitzero"`
}

// schedule is the collector's view of the scrape settings.
func (s *ScrapeConfig) schedule() collector.Schedule {
	return collector.Schedule{Jitter: s.Jitter, Fleet: s.Fleet}
}

// SchedulerConfig is the scheduling profile. A list left out gets the
// default; an empty list means none.
type SchedulerConfig struct {
	Filters      []PluginConfig `json:"filters"`
	Scorers      []ScorerConfig `json:"scorers"`
	Picker       PluginConfig   `json:"picker,omitzero"`
	MaxEndpoints int            `json:"maxEndpoints,omitempty"`
}

// PluginConfig names a filter or picker.
type PluginConfig struct {
	Type string `json:"type"`
}

// ScorerConfig names a scorer and its weight (default 1).
type ScorerConfig struct {
	Type   string   `json:"type"`
	Weight *float64 `json:"weight,omitempty"`
}

// PrefixConfig is the prefix-cache scorer's parameters, declared, defaulted
// and validated in its package.
type PrefixConfig = prefix.Config

// SaturationConfig is the saturation filter's thresholds, declared,
// defaulted and validated in its package.
type SaturationConfig = saturation.Config

// pluginParams are the pool's sections that belong to one plugin each,
// by JSON field name, in the order their errors are reported.
func (p *PoolConfig) pluginParams() []namedParams {
	return []namedParams{{"prefix", &p.Prefix}, {"saturation", &p.Saturation}, {"probe", &p.Probe}}
}

type namedParams struct {
	field  string
	params framework.Params
}

// Failure modes: what a pool with no usable metrics at all does.
const (
	FailOpen  = "fail-open"  // pass the request without a destination; Envoy's fallback policy picks
	FailClose = "fail-close" // reply 503
)

// Duration is a time.Duration written as a Go duration string ("100ms").
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "100ms"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (want e.g. \"100ms\", \"5s\")", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Parse decodes and validates a filter_config and fills in defaults. Unknown
// fields, wrong types and bad values are errors naming the field's path,
// e.g. "pools[0].scheduler.scorers[1].weight: must be >= 0".
func Parse(data []byte) (*Config, error) {
	if len(data) == 0 {
		return nil, errors.New(`empty endpoint_picker config: want {"pools": [...]}`)
	}
	var cfg Config
	if err := strictjson.Decode(data, &cfg); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

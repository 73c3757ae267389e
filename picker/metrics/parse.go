package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ErrMissing is wrapped by Parse errors that name a required metric absent
// from the exposition.
var ErrMissing = errors.New("missing metric")

// Parser reads expositions. It keeps scratch buffers between calls, so one
// Parser must not be used by two goroutines at once.
type Parser struct {
	lines  []byte
	wanted []string
	reader bytes.Reader
	fast   fastState
}

// NewParser returns a Parser that accepts UTF-8 metric names.
func NewParser() *Parser { return &Parser{} }

// Parse extracts a Sample from a Prometheus text exposition. It fails, and the
// endpoint must be treated as unhealthy, when the exposition does not parse,
// a required metric (waiting, running, KV use) is missing, or a value is NaN,
// infinite, negative or, for KV use, above 1. Lines of families not named in
// names are ignored without being parsed.
func (p *Parser) Parse(body []byte, names *Names) (s Sample, err error) {
	// prometheus/common v0.66.1's text parser dereferences nil on some
	// inputs (a line "{}", found by FuzzParseMetrics). A panic here would
	// kill the whole proxy, so it is an unusable exposition instead.
	defer func() {
		if r := recover(); r != nil {
			s, err = Sample{}, fmt.Errorf("parse exposition: parser panic: %v", r)
		}
	}()
	p.wanted = names.list(p.wanted[:0])
	if s, ok, err := p.parseFast(body, names); ok {
		return s, err
	}
	return p.parseExpfmt(body, names)
}

// parseExpfmt is Parse through expfmt, for what the fast path does not
// read: quoted names, escapes, timestamps, unusual spacing, histogram or
// summary types under a wanted name.
func (p *Parser) parseExpfmt(body []byte, names *Names) (s Sample, err error) {
	p.lines = selectLines(p.lines[:0], body, p.wanted)
	p.reader.Reset(p.lines)
	// A new TextParser each time: its reset leaves state of the previous
	// input behind (the fuzzer found results depending on what was parsed
	// before), and it allocates its maps anew on every call anyway.
	text := expfmt.NewTextParser(model.UTF8Validation)
	families, err := text.TextToMetricFamilies(&p.reader)
	if err != nil {
		return Sample{}, fmt.Errorf("parse exposition: %w", err)
	}

	if s.Waiting, err = required(families, names.Waiting, sum); err != nil {
		return Sample{}, err
	}
	if s.Running, err = required(families, names.Running, sum); err != nil {
		return Sample{}, err
	}
	kvName := names.KVUsage
	if families[kvName] == nil && names.KVUsageFallback != "" && families[names.KVUsageFallback] != nil {
		kvName = names.KVUsageFallback
	}
	if s.KVUsage, err = required(families, kvName, mean); err != nil {
		return Sample{}, err
	}
	if s.KVUsage > 1 {
		return Sample{}, fmt.Errorf("%s is %g, outside [0,1]", kvName, s.KVUsage)
	}
	if mf := families[names.LoRAInfo]; mf != nil && names.LoRAInfo != "" {
		s.LoRA = newestLoRA(mf)
	}
	if mf := families[names.CacheConfig]; mf != nil && names.CacheConfig != "" && len(mf.Metric) > 0 {
		m := mf.Metric[0]
		s.BlockSize, _ = strconv.Atoi(label(m, names.BlockSizeLabel))
		s.NumGPUBlocks, _ = strconv.Atoi(label(m, names.NumBlocksLabel))
	}
	return s, nil
}

type aggregate int

const (
	sum  aggregate = iota // load gauges: data-parallel ranks add up
	mean                  // fractions: data-parallel ranks each have their own cache
)

// required returns the aggregated value of a gauge, counter or untyped family.
func required(families map[string]*dto.MetricFamily, name string, agg aggregate) (float64, error) {
	if name == "" {
		return 0, nil
	}
	mf := families[name]
	if mf == nil || len(mf.Metric) == 0 {
		return 0, fmt.Errorf("%w %s", ErrMissing, name)
	}
	var total float64
	for _, m := range mf.Metric {
		var v float64
		switch mf.GetType() {
		case dto.MetricType_GAUGE:
			v = m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			v = m.GetCounter().GetValue()
		case dto.MetricType_UNTYPED:
			v = m.GetUntyped().GetValue()
		default:
			return 0, fmt.Errorf("%s has type %s, want a gauge", name, strings.ToLower(mf.GetType().String()))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, fmt.Errorf("%s has value %g", name, v)
		}
		total += v
	}
	if math.IsInf(total, 0) {
		return 0, fmt.Errorf("%s overflows", name)
	}
	if agg == mean {
		total /= float64(len(mf.Metric))
	}
	return total, nil
}

// newestLoRA returns the state of the series with the newest timestamp
// (the sample value). The timestamps have one-second resolution, so several
// series often tie: their adapter lists are merged, since each adapter named
// was in that state during the newest second.
func newestLoRA(mf *dto.MetricFamily) *LoRA {
	newest := math.Inf(-1)
	for _, m := range mf.Metric {
		if v := value(m); !math.IsNaN(v) && v > newest {
			newest = v
		}
	}
	if math.IsInf(newest, -1) {
		return nil
	}
	var running, waiting []string
	maxLoRA := 0
	for _, m := range mf.Metric {
		if value(m) != newest {
			continue
		}
		running = appendList(running, label(m, "running_lora_adapters"))
		waiting = appendList(waiting, label(m, "waiting_lora_adapters"))
		if n, err := strconv.Atoi(label(m, "max_lora")); err == nil && n > maxLoRA {
			maxLoRA = n
		}
	}
	return NewLoRA(running, waiting, maxLoRA)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// appendList adds the comma-separated names of list not already in dst.
func appendList(dst []string, list string) []string {
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(dst, name) {
			dst = append(dst, name)
		}
	}
	return dst
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.Label {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

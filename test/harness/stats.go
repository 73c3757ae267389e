package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Stat is one counter, gauge or histogram series (name plus tag values), as
// the module defined and fed it through the ABI. In Envoy's own /stats the
// name carries the scope prefix "dynamicmodulescustom.".
type Stat struct {
	Kind   string            `json:"kind"` // counter, gauge, histogram
	Name   string            `json:"name"`
	Tags   map[string]string `json:"tags"`
	Value  uint64            `json:"value"`  // counters and gauges
	Count  uint64            `json:"count"`  // histograms
	Sum    uint64            `json:"sum"`    // histograms
	Values []uint64          `json:"values"` // histograms: the first 4096 recorded values
}

// ABIStats counts the ABI traffic of the whole process.
type ABIStats struct {
	Violations             int               `json:"violations"`
	ForeignThreadCalls     int               `json:"foreignThreadCalls"`
	SchedulerCommits       int               `json:"schedulerCommits"`
	ForeignThreadCommits   int               `json:"foreignThreadCommits"`
	DroppedScheduledEvents int               `json:"droppedScheduledEvents"`
	Hooks                  map[string]uint64 `json:"hooks"`
	Callbacks              map[string]uint64 `json:"callbacks"`
}

// Stats is a snapshot of every stat and the ABI counts.
type Stats struct {
	All []Stat   `json:"stats"`
	ABI ABIStats `json:"abi"`
}

// Stats reads every stat now.
func (h *Host) Stats() (*Stats, error) {
	raw, err := h.call(context.Background(), "stats")
	if err != nil {
		return nil, err
	}
	var s Stats
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// MustStats is Stats failing the test on error.
func (h *Host) MustStats() *Stats {
	h.t.Helper()
	s, err := h.Stats()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// Find returns the series of that kind and name whose tags are exactly the
// given key, value pairs.
func (s *Stats) Find(kind, name string, tags ...string) *Stat {
	if len(tags)%2 != 0 {
		panic("harness: tags are key, value pairs")
	}
	for i := range s.All {
		st := &s.All[i]
		if st.Kind != kind || st.Name != name || len(st.Tags) != len(tags)/2 {
			continue
		}
		match := true
		for j := 0; j < len(tags); j += 2 {
			if v, ok := st.Tags[tags[j]]; !ok || v != tags[j+1] {
				match = false
				break
			}
		}
		if match {
			return st
		}
	}
	return nil
}

// Counter returns the value of the counter series with exactly these tags
// (key, value pairs); when there is none, the sum over every series of that
// name whose tags include them (false when no series matches at all).
func (s *Stats) Counter(name string, tags ...string) (uint64, bool) {
	return s.value("counter", name, tags)
}

// Gauge is Counter for gauges.
func (s *Stats) Gauge(name string, tags ...string) (uint64, bool) {
	return s.value("gauge", name, tags)
}

func (s *Stats) value(kind, name string, tags []string) (uint64, bool) {
	if st := s.Find(kind, name, tags...); st != nil {
		return st.Value, true
	}
	var sum uint64
	found := false
	for _, st := range s.All {
		if st.Kind != kind || st.Name != name {
			continue
		}
		match := true
		for j := 0; j+1 < len(tags); j += 2 {
			if v, ok := st.Tags[tags[j]]; !ok || v != tags[j+1] {
				match = false
				break
			}
		}
		if match {
			sum += st.Value
			found = true
		}
	}
	return sum, found
}

// Histogram returns a histogram series.
func (s *Stats) Histogram(name string, tags ...string) (*Stat, bool) {
	st := s.Find("histogram", name, tags...)
	return st, st != nil
}

// Named returns every series of a name, whatever its tags.
func (s *Stats) Named(name string) []Stat {
	var out []Stat
	for _, st := range s.All {
		if st.Name == name {
			out = append(out, st)
		}
	}
	return out
}

func (s *Stats) String() string {
	var b strings.Builder
	for _, st := range s.All {
		fmt.Fprintf(&b, "%s %s %v", st.Kind, st.Name, st.Tags)
		if st.Kind == "histogram" {
			fmt.Fprintf(&b, " count=%d sum=%d\n", st.Count, st.Sum)
		} else {
			fmt.Fprintf(&b, " = %d\n", st.Value)
		}
	}
	return b.String()
}

package main

import (
	"fmt"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// metricDefiner defines a filter config's stats and keeps the first error:
// stats can only be defined while Envoy creates the config.
type metricDefiner struct {
	h      shared.HttpFilterConfigHandle
	prefix string
	err    error
}

func (d *metricDefiner) check(kind, name string, res shared.MetricsResult) {
	if res != shared.MetricsSuccess && d.err == nil {
		d.err = fmt.Errorf("defining %s %s%s failed (result %d)", kind, d.prefix, name, res)
	}
}

func (d *metricDefiner) counter(name string, tags ...string) shared.MetricID {
	id, res := d.h.DefineCounter(d.prefix+name, tags...)
	d.check("counter", name, res)
	return id
}

func (d *metricDefiner) gauge(name string, tags ...string) shared.MetricID {
	id, res := d.h.DefineGauge(d.prefix+name, tags...)
	d.check("gauge", name, res)
	return id
}

func (d *metricDefiner) histogram(name string, tags ...string) shared.MetricID {
	id, res := d.h.DefineHistogram(d.prefix+name, tags...)
	d.check("histogram", name, res)
	return id
}

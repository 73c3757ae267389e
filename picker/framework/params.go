package framework

// Params is a plugin's own parameters: the section of the filter_config the
// plugin reads (e.g. "prefix", "saturation"), declared in the plugin's
// package as a JSON-tagged struct. The pool configuration embeds one of
// each; the picker decodes it, then asks the plugin's type to fill its
// defaults and check it, so a plugin's knobs, their defaults and their
// limits live in the plugin's package only. The plugin's factory takes the
// same type.
type Params interface {
	// SetDefaults fills the fields left out of the filter_config.
	SetDefaults()
	// Validate reports each bad value by its field's JSON name relative to
	// the section ("blockSize"), for the caller to prefix with the path.
	Validate(report func(field, msg string))
}

// PluginStats are the gauges and counters plugins keep; the pool adds
// them to its Stats. A plugin fills the fields it owns.
type PluginStats struct {
	PrefixEntries int64  // distinct prefix hashes in the learned index
	PrefixDropped uint64 // index updates dropped under overload
}

// StatsReporter is a plugin with gauges or counters of its own.
type StatsReporter interface {
	ReportStats(s *PluginStats)
}

// SaturationDetector is a plugin that tells whether one endpoint is
// saturated, for the pool's Saturated gauge.
type SaturationDetector interface {
	Saturated(ep *Endpoint) bool
}

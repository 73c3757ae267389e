package transform

import (
	"strconv"
	"time"
)

// OpenTelemetry GenAI metric names the module declares as Envoy stats. Their
// tags: operation (Endpoint.Operation), original model (Decision.Model),
// request model (Decision.TargetModel), response model (Report.Model) and
// error type (Report.ErrorType); token usage adds the token type
// (Usage.Counts).
const (
	MetricTokenUsage         = "gen_ai.client.token.usage"
	MetricRequestDuration    = "gen_ai.server.request.duration"
	MetricTimeToFirstToken   = "gen_ai.server.time_to_first_token"
	MetricTimePerOutputToken = "gen_ai.server.time_per_output_token"
)

// OtherModel is the stat tag value of every model name the config does not
// name (see Config.MetricModel).
const OtherModel = "_OTHER"

// MetricModel is the stat tag value for a model name (original, request or
// response model): the name itself when the config names it (models,
// rewrite rules and their targets), else OtherModel. Envoy never frees a
// stat, so tags taken from client input or from what an upstream reports
// would let anyone grow the proxy's memory without bound, one made-up
// model name at a time.
func (c *Config) MetricModel(name string) string {
	if c.tagged[name] {
		return name
	}
	return OtherModel
}

// ErrorTypeOther is the error type of a failure without an HTTP status of
// its own, such as an error event in a 200 stream.
const ErrorTypeOther = "_OTHER"

// ErrorType is the error.type tag of a response: "" when it succeeded, the
// status code for a non-2xx response, ErrorTypeOther for a stream that
// reported an error.
func (r Report) ErrorType() string {
	switch {
	case r.Status < 200 || r.Status > 299:
		return strconv.Itoa(r.Status)
	case r.StreamError:
		return ErrorTypeOther
	}
	return ""
}

// OutputTokens is the number of generated tokens: the reported usage, or,
// for a stream without usage, the number of content events (servers such
// as vLLM send one token per event).
func (r Report) OutputTokens() uint64 {
	if r.HasUsage {
		return r.Usage.OutputTokens
	}
	return uint64(r.ContentEvents)
}

// Timing holds the latency metrics of one request.
type Timing struct {
	Duration time.Duration // from the request's start to the response's end
	// TimeToFirstToken is from the request's start to the first content
	// event of a stream; HasTTFT is false for unstreamed responses and
	// streams without content.
	TimeToFirstToken time.Duration
	HasTTFT          bool
	// TimePerOutputToken is the mean time between output tokens after the
	// first: (end - first token) / (output tokens - 1). HasTPOT needs a
	// TTFT and at least two output tokens.
	TimePerOutputToken time.Duration
	HasTPOT            bool
}

// Timing computes the latency metrics of a request that started at start
// and whose response ended at end.
func (r Report) Timing(start, end time.Time) Timing {
	t := Timing{Duration: end.Sub(start)}
	if !r.Streamed || r.FirstContent.IsZero() {
		return t
	}
	t.TimeToFirstToken, t.HasTTFT = r.FirstContent.Sub(start), true
	if n := r.OutputTokens(); n > 1 {
		t.TimePerOutputToken, t.HasTPOT = end.Sub(r.FirstContent)/time.Duration(n-1), true
	}
	return t
}

package transform

import (
	"errors"
	"fmt"
	"io"
)

// Estimates. A response whose usage the meter could not read is never free:
// it is charged an estimate, and the module says so in the cost metadata
// (UsageEstimateKey). The rule is deliberately cheap and documented rather
// than a tokenizer: one token per EstimateBytesPerToken bytes, rounded up.
// For English text and JSON that is close to real tokenizers (the JSON
// punctuation of a request makes it an overestimate); CJK text counts about
// a third less than it should.
const EstimateBytesPerToken = 4

const (
	defaultMaxTokensEstimate = 4096
	maxDefaultMaxTokens      = 10_000_000
)

// EstimateTokens estimates the tokens of n bytes of text or JSON.
func EstimateTokens(n int) uint64 {
	if n <= 0 {
		return 0
	}
	return uint64(n+EstimateBytesPerToken-1) / EstimateBytesPerToken
}

// UsageEstimateKey is the dynamic metadata key, in namespace CostNamespace,
// that says a response's costs are estimates and which (UsageSource). It is
// absent when the server's own usage was charged.
const UsageEstimateKey = "usage_estimate"

// UsageSource says where charged usage came from.
type UsageSource string

const (
	// UsageCounted: the server's usage.
	UsageCounted UsageSource = ""
	// UsagePromptOnly: no response reached the filter (reset, client gone
	// before the response): input estimated from the request body, no output.
	UsagePromptOnly UsageSource = "prompt"
	// UsageStreamed: a readable stream without a usage chunk (cut short, or
	// a server that ignores include_usage): input estimated from the request
	// body, output from the streamed content (the larger of its content
	// events and its content bytes / EstimateBytesPerToken).
	UsageStreamed UsageSource = "prompt+streamed"
	// UsageReserved: a response the meter could not read (an encoding it
	// does not decode, a body over its limits, not JSON, no usage): input
	// estimated from the request body, output the request's max_tokens (or
	// defaultMaxTokens).
	UsageReserved UsageSource = "prompt+max_tokens"
)

// Estimate is what a request is expected to cost before any response:
// what a budget reserves, and what an unreadable response is charged.
type Estimate struct {
	InputTokens  uint64 // EstimateTokens of the request body
	OutputTokens uint64 // max_tokens (or max_completion_tokens, max_output_tokens), else defaultMaxTokens; 0 for embeddings
}

// Total is the tokens to reserve.
func (e Estimate) Total() uint64 { return satAdd(e.InputTokens, e.OutputTokens) }

// EstimateOf estimates a decided request from its body length. Only the
// generating endpoints (chat, completions, responses, messages) have output;
// tokenize and detokenize run no model and are estimated at nothing.
func (c *Config) EstimateOf(d *Decision, bodyLen int) Estimate {
	switch d.Endpoint {
	case EndpointTokenize, EndpointDetokenize:
		return Estimate{}
	}
	e := Estimate{InputTokens: EstimateTokens(bodyLen)}
	switch d.Endpoint {
	case EndpointChatCompletions, EndpointCompletions, EndpointResponses, EndpointMessages, EndpointInvocations:
		e.OutputTokens = c.DefaultMaxTokens
		if d.MaxTokens > 0 {
			e.OutputTokens = d.MaxTokens
		}
	}
	return e
}

// Charge is what a response is charged: its usage and where it came from.
type Charge struct {
	Usage  Usage
	Source UsageSource
	// Charged is false for responses that cost nothing: non-2xx statuses
	// (the server refused or failed; its error carries no usage).
	Charged bool
}

// ChargeOf decides what a response is charged from the meter's report
// (nil when no response reached the filter) and the request's estimate:
// the server's usage when the meter read it, otherwise an estimate that
// never lets an unreadable or cut response go free.
func ChargeOf(r *Report, e Estimate) Charge {
	switch {
	case (r == nil || r.Status == 0) && e != Estimate{}:
		return Charge{Usage: estimated(e.InputTokens, 0), Source: UsagePromptOnly, Charged: true}
	case r == nil || r.Status == 0:
		return Charge{}
	case r.Status < 200 || r.Status > 299:
		return Charge{}
	case r.HasUsage:
		return Charge{Usage: r.Usage, Charged: true}
	case e == Estimate{}: // nothing to estimate (tokenize): nothing charged
		return Charge{}
	case r.Streamed && (r.Err == nil || errors.Is(r.Err, io.ErrUnexpectedEOF)): // read, or a gzip stream cut short
		out := max(uint64(r.ContentEvents), EstimateTokens(r.ContentBytes))
		return Charge{Usage: estimated(e.InputTokens, out), Source: UsageStreamed, Charged: true}
	}
	return Charge{Usage: estimated(e.InputTokens, e.OutputTokens), Source: UsageReserved, Charged: true}
}

func estimated(in, out uint64) Usage {
	return Usage{InputTokens: in, OutputTokens: out, TotalTokens: satAdd(in, out)}
}

func (c *Config) compileEstimates() error {
	switch {
	case c.DefaultMaxTokens == 0:
		c.DefaultMaxTokens = defaultMaxTokensEstimate
	case c.DefaultMaxTokens > maxDefaultMaxTokens:
		return fmt.Errorf("defaultMaxTokens: must be at most %d", maxDefaultMaxTokens)
	}
	return nil
}

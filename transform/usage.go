package transform

import "github.com/tidwall/gjson"

// Usage is the token usage a server reported for one response.
type Usage struct {
	InputTokens       uint64 // prompt_tokens, or input_tokens (Responses API)
	CachedInputTokens uint64 // prompt_tokens_details.cached_tokens, or input_tokens_details.cached_tokens
	OutputTokens      uint64 // completion_tokens, or output_tokens
	ReasoningTokens   uint64 // completion_tokens_details.reasoning_tokens, or output_tokens_details.reasoning_tokens
	TotalTokens       uint64 // total_tokens; input + output when the server leaves it out
}

// Token types of the gen_ai.client.token.usage metric (gen_ai.token.type).
const (
	TokenTypeInput       = "input"
	TokenTypeOutput      = "output"
	TokenTypeCachedInput = "cached_input"
	TokenTypeReasoning   = "reasoning"
)

// TokenCount is a number of tokens of one type.
type TokenCount struct {
	Type  string
	Count uint64
}

// Counts lists the usage by token type, for the token usage metric.
func (u Usage) Counts() [4]TokenCount {
	return [4]TokenCount{
		{TokenTypeInput, u.InputTokens},
		{TokenTypeOutput, u.OutputTokens},
		{TokenTypeCachedInput, u.CachedInputTokens},
		{TokenTypeReasoning, u.ReasoningTokens},
	}
}

// ParseUsage reads the "usage" object of a whole JSON response body, in the
// Chat Completions, Completions, Embeddings or Responses format. It reports
// false when the body has no usage object.
func ParseUsage(body []byte) (Usage, bool) {
	return usageOf(gjson.Parse(unsafeString(body)).Get("usage"))
}

// usageOf reads a usage object in either naming: the chat family's
// prompt/completion tokens or the Responses API's input/output tokens.
func usageOf(v gjson.Result) (Usage, bool) {
	if !v.IsObject() {
		return Usage{}, false
	}
	var u Usage
	total := false
	v.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			u.InputTokens = count(v)
		case "completion_tokens", "output_tokens":
			u.OutputTokens = count(v)
		case "total_tokens":
			u.TotalTokens, total = count(v), true
		case "prompt_tokens_details", "input_tokens_details":
			u.CachedInputTokens = count(v.Get("cached_tokens"))
		case "completion_tokens_details", "output_tokens_details":
			u.ReasoningTokens = count(v.Get("reasoning_tokens"))
		}
		return true
	})
	if !total {
		u.TotalTokens = u.InputTokens + u.OutputTokens
	}
	return u, true
}

// count reads a token count; anything but a non-negative integer is 0.
func count(v gjson.Result) uint64 {
	if v.Type != gjson.Number || len(v.Raw) == 0 || v.Raw[0] == '-' {
		return 0
	}
	return v.Uint()
}

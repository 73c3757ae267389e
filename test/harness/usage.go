package harness

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Usage is an OpenAI answer's token usage.
type Usage struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	TotalTokens      uint64 `json:"total_tokens"`
}

// ParseUsage reads the usage of an OpenAI answer: a JSON body, or the
// usage chunk of an SSE stream.
func ParseUsage(body []byte) (Usage, error) {
	var u struct {
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(body, &u) == nil && u.Usage != nil {
		return *u.Usage, nil
	}
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		u.Usage = nil
		if err := json.Unmarshal([]byte(data), &u); err != nil {
			return Usage{}, fmt.Errorf("%w: %s", err, data)
		}
		if u.Usage != nil && u.Usage.TotalTokens > 0 {
			return *u.Usage, nil
		}
	}
	return Usage{}, fmt.Errorf("no usage in %q", body)
}

package transform

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDefaults(t *testing.T) {
	for _, in := range []string{"", "  \n", "null", "{}"} {
		t.Run(in, func(t *testing.T) {
			c, err := Parse([]byte(in))
			require.NoError(t, err)
			require.Equal(t, int64(4<<20), c.MaxRequestBodyBytes)
			require.True(t, c.TokenAccounting)
			require.Nil(t, c.RejectUnknownPaths)
			require.Empty(t, c.PassThroughPaths)
			require.False(t, c.ServesModels())
			require.Nil(t, c.Budgets())
			require.Equal(t, `{"object":"list","data":[]}`, string(c.ModelsBody()))
		})
	}
}

const fullConfig = `{
  "maxRequestBodyBytes": 1048576,
  "rejectUnknownPaths": true,
  "passThroughPaths": ["/health", "/v1/audio/transcriptions", "/v1/responses/*"],
  "models": [
    {"name": "llama-3-8b", "ownedBy": "meta", "created": 1700000000},
    {"name": "food-review"}
  ],
  "rewrites": [
    {"model": "food-review", "targets": [
      {"model": "food-review-v1", "weight": 90},
      {"model": "food-review-v2", "weight": 10}
    ]},
    {"targets": [{"model": "llama-3-8b"}]}
  ],
  "tokenAccounting": true,
  "costs": [
    {"metadataKey": "llm_input_token", "type": "input"},
    {"metadataKey": "llm_total_token", "type": "total"},
    {"metadataKey": "llm_cel_cost", "type": "cel", "cel": "model == 'llama-3-8b' ? input_tokens + output_tokens * 3u : total_tokens"}
  ],
  "budget": {"header": "X-API-Key", "tokens": 100000, "window": "1h", "maxKeys": 1000}
}`

func TestParseFullConfig(t *testing.T) {
	c, err := Parse([]byte(fullConfig))
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), c.MaxRequestBodyBytes)
	require.True(t, *c.RejectUnknownPaths)
	require.True(t, c.passThru.match("/health"))
	require.True(t, c.passThru.match("/v1/responses/resp_1/cancel"))
	require.False(t, c.passThru.match("/v1/responses"))
	require.Equal(t, "x-api-key", c.Budget.Header)
	require.NotNil(t, c.Budgets())
	require.Equal(t, time.Hour, c.Budgets().window)
	require.Equal(t, "1h", c.Budget.Window)
	require.Equal(t, int64(1), c.Rewrites[1].Targets[0].Weight, "weight defaults to 1")
	require.Equal(t,
		`{"object":"list","data":[{"id":"llama-3-8b","object":"model","created":1700000000,"owned_by":"meta"},`+
			`{"id":"food-review","object":"model","created":0,"owned_by":"envoy-inferencepool"}]}`,
		string(c.ModelsBody()))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"not JSON", `{`, "invalid JSON: unexpected EOF"},
		{"two values", `{} {}`, "invalid JSON: data after the top-level value"},
		{"not an object", `[]`, "must be an object"},
		{"unknown top-level field", `{"maxBodyBytes": 1}`, `unknown field "maxBodyBytes"`},
		{"field names are case-sensitive", `{"MaxRequestBodyBytes": 1}`, `unknown field "MaxRequestBodyBytes"`},
		{"unknown nested field", `{"rewrites":[{"model":"a","targets":[{"model":"b","weigth":2}]}]}`, `rewrites[0].targets[0]: unknown field "weigth"`},
		{"wrong type", `{"rejectUnknownPaths": "yes"}`, "rejectUnknownPaths: must be a boolean"},
		{"fraction", `{"maxRequestBodyBytes": 1.5}`, "maxRequestBodyBytes: must be an integer"},
		{"too big", `{"maxRequestBodyBytes": 9223372036854775808}`, "maxRequestBodyBytes: out of range"},
		{"negative uint", `{"budget":{"header":"h","tokens":-1}}`, "budget.tokens: must be a non-negative integer"},
		{"models not an array", `{"models": {"name": "a"}}`, "models: must be an array"},
		{"zero body limit", `{"maxRequestBodyBytes": 0}`, "maxRequestBodyBytes: must be > 0"},
		{"model without name", `{"models":[{"name":"a"},{"ownedBy":"x"}]}`, "models[1].name: must not be empty"},
		{"duplicate model", `{"models":[{"name":"a"},{"name":"a"}]}`, `models[1].name: duplicate model "a"`},
		{"rule without targets", `{"rewrites":[{"model":"a","targets":[]}]}`, "rewrites[0].targets: must hold at least one target"},
		{"zero weight", `{"rewrites":[{"model":"a","targets":[{"model":"b"},{"model":"c","weight":0}]}]}`, "rewrites[0].targets[1].weight: must be > 0"},
		{"huge weight", `{"rewrites":[{"model":"a","targets":[{"model":"b","weight":1000001}]}]}`, "rewrites[0].targets[0].weight: must be at most 1000000"},
		{"target without model", `{"rewrites":[{"model":"a","targets":[{"weight":1}]}]}`, "rewrites[0].targets[0].model: must not be empty"},
		{"duplicate target", `{"rewrites":[{"model":"a","targets":[{"model":"b"},{"model":"b"}]}]}`, `rewrites[0].targets[1].model: duplicate target "b"`},
		{"duplicate rule", `{"rewrites":[{"model":"a","targets":[{"model":"b"}]},{"model":"a","targets":[{"model":"c"}]}]}`, `rewrites[1].model: duplicate rule for model "a"`},
		{"two catch-all rules", `{"rewrites":[{"targets":[{"model":"b"}]},{"targets":[{"model":"c"}]}]}`, "rewrites[1].model: only one rule may leave model empty"},
		{"rule for an unlisted model", `{"models":[{"name":"a"}],"rewrites":[{"model":"x","targets":[{"model":"a"}]}]}`, `rewrites[0].model: "x" is not in models`},
		{"cost without key", `{"costs":[{"type":"input"}]}`, "costs[0].metadataKey: must not be empty"},
		{"duplicate cost key", `{"costs":[{"metadataKey":"k","type":"input"},{"metadataKey":"k","type":"output"}]}`, `costs[1].metadataKey: duplicate key "k"`},
		{"unknown cost type", `{"costs":[{"metadataKey":"k","type":"InputToken"}]}`, `costs[0].type: "InputToken" is not one of input, output, cached_input, cache_creation_input, total, reasoning, cel`},
		{"reserved cost key", `{"costs":[{"metadataKey":"cache_creation_input_tokens","type":"input"}]}`, `costs[0].metadataKey: "cache_creation_input_tokens" is a key the filters write themselves`},
		{"reserved estimate key", `{"costs":[{"metadataKey":"k","type":"input"},{"metadataKey":"usage_estimate","type":"output"}]}`, `costs[1].metadataKey: "usage_estimate"`},
		{"cel without expression", `{"costs":[{"metadataKey":"k","type":"cel"}]}`, "costs[0].cel: required with type cel"},
		{"expression without cel", `{"costs":[{"metadataKey":"k","type":"input","cel":"1"}]}`, "costs[0].cel: only allowed with type cel"},
		{"cel syntax", `{"costs":[{"metadataKey":"a","type":"input"},{"metadataKey":"k","type":"cel","cel":"input_tokens +"}]}`, "costs[1].cel: compile error: ERROR: <input>:1:15: Syntax error"},
		{"cel unknown variable", `{"costs":[{"metadataKey":"k","type":"cel","cel":"prompt_tokens * 2u"}]}`, "costs[0].cel: compile error: ERROR: <input>:1:1: undeclared reference to 'prompt_tokens'"},
		{"cel double", `{"costs":[{"metadataKey":"k","type":"cel","cel":"double(input_tokens) * 0.5"}]}`, "costs[0].cel: must return an int or a uint, not double"},
		{"cel string", `{"costs":[{"metadataKey":"k","type":"cel","cel":"model"}]}`, "costs[0].cel: must return an int or a uint, not string"},
		{"cel negative on zero usage", `{"costs":[{"metadataKey":"k","type":"cel","cel":"int(input_tokens) - 5"}]}`, "costs[0].cel: on zero usage: result is negative (-5)"},
		{"cel fails on zero usage", `{"costs":[{"metadataKey":"k","type":"cel","cel":"input_tokens / output_tokens"}]}`, "costs[0].cel: on zero usage: division by zero"},
		{"costs without accounting", `{"tokenAccounting":false,"costs":[{"metadataKey":"k","type":"input"}]}`, "costs: need tokenAccounting"},
		{"budget without accounting", `{"tokenAccounting":false,"budget":{"header":"h","tokens":1}}`, "budget: needs tokenAccounting"},
		{"budget without header", `{"budget":{"tokens":1}}`, "budget.header: must not be empty"},
		{"budget without tokens", `{"budget":{"header":"h"}}`, "budget.tokens: must be > 0"},
		{"budget bad window", `{"budget":{"header":"h","tokens":1,"window":"1 minute"}}`, `budget.window: time: unknown unit " minute" in duration "1 minute"`},
		{"budget short window", `{"budget":{"header":"h","tokens":1,"window":"10ms"}}`, "budget.window: must be at least 1s"},
		{"rejectUnknownPaths false", `{"rejectUnknownPaths": false}`, `rejectUnknownPaths: false is no longer supported: unknown paths get 404; list the paths to pass through in passThroughPaths (["/*"] passes every unknown path)`},
		{"pass-through not a list", `{"passThroughPaths": "/health"}`, "passThroughPaths: must be an array"},
		{"pass-through empty", `{"passThroughPaths": [""]}`, `passThroughPaths[0]: "" must not be empty`},
		{"pass-through relative", `{"passThroughPaths": ["/a", "health"]}`, `passThroughPaths[1]: "health" must start with '/'`},
		{"pass-through query", `{"passThroughPaths": ["/health?x=1"]}`, `passThroughPaths[0]: "/health?x=1" must not hold a query or fragment`},
		{"pass-through inner star", `{"passThroughPaths": ["/v1/*/x"]}`, `passThroughPaths[0]: "/v1/*/x" may hold '*' only as its last segment, "/*"`},
		{"pass-through partial star", `{"passThroughPaths": ["/v1/x*"]}`, `passThroughPaths[0]: "/v1/x*" may hold '*' only as its last segment`},
		{"pass-through escape", `{"passThroughPaths": ["/v1/a%2Fb"]}`, `passThroughPaths[0]: "/v1/a%2Fb" must be written decoded`},
		{"pass-through trailing slash", `{"passThroughPaths": ["/health/"]}`, `passThroughPaths[0]: "/health/" is not in normal form (no '//', '.' or '..' segments, no trailing '/'): write "/health"`},
		{"pass-through double slash", `{"passThroughPaths": ["//health"]}`, `is not in normal form`},
		{"pass-through dot segment", `{"passThroughPaths": ["/v1/../health"]}`, `write "/health"`},
		{"pass-through duplicate", `{"passThroughPaths": ["/health","/health"]}`, `passThroughPaths[1]: duplicate path "/health"`},
		{"pass-through a checked endpoint", `{"passThroughPaths": ["/v1/chat/completions"]}`, `passThroughPaths[0]: "/v1/chat/completions" is /v1/chat/completions, an endpoint ai_router checks: it cannot be passed through`},
		{"pass-through an alias of a checked endpoint", `{"passThroughPaths": ["/v2/rerank"]}`, `an endpoint ai_router checks`},
		{"model name too long", `{"models":[{"name":"` + strings.Repeat("m", 257) + `"}]}`, "models[0].name: model must be at most 256 bytes long"},
		{"model name with a control character", `{"models":[{"name":"a\nb"}]}`, "models[0].name: model must be UTF-8 text without control characters"},
		{"rule model too long", `{"rewrites":[{"model":"` + strings.Repeat("m", 257) + `","targets":[{"model":"a"}]}]}`, "rewrites[0].model: model must be at most 256 bytes long"},
		{"budget negative keys", `{"budget":{"header":"h","tokens":1,"maxKeys":-3}}`, "budget.maxKeys: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.config))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

package transform

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendCosts(t *testing.T) {
	u := CostUsage{Usage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 30, ReasoningTokens: 12, TotalTokens: 130}, 20}
	tests := []struct {
		name  string
		costs string
		model string
		want  []CostValue
		err   string
	}{
		{"every type", `[
			{"metadataKey":"in","type":"input"},
			{"metadataKey":"out","type":"output"},
			{"metadataKey":"cached","type":"cached_input"},
			{"metadataKey":"total","type":"total"},
			{"metadataKey":"reasoning","type":"reasoning"},
			{"metadataKey":"cache_write","type":"cache_creation_input"}]`, "m",
			[]CostValue{{"in", 100}, {"out", 30}, {"cached", 40}, {"total", 130}, {"reasoning", 12}, {"cache_write", 20}}, ""},
		{"cel prices cache writes apart", `[{"metadataKey":"k","type":"cel","cel":
			"(input_tokens - cached_input_tokens - cache_creation_input_tokens) * 4u + cached_input_tokens + cache_creation_input_tokens * 5u"}]`, "m",
			[]CostValue{{"k", 40*4 + 40 + 20*5}}, ""},
		{"cel over every variable", `[{"metadataKey":"k","type":"cel","cel":
			"input_tokens - cached_input_tokens + cached_input_tokens / 10u + output_tokens * 4u + reasoning_tokens + total_tokens"}]`, "m",
			[]CostValue{{"k", 60 + 4 + 120 + 12 + 130}}, ""},
		{"cel by model and backend", `[{"metadataKey":"k","type":"cel","cel":
			"model == 'big' && backend.startsWith('10.0.') ? total_tokens * 10u : total_tokens"}]`, "big",
			[]CostValue{{"k", 1300}}, ""},
		{"cel by model, other model", `[{"metadataKey":"k","type":"cel","cel":
			"model == 'big' ? total_tokens * 10u : total_tokens"}]`, "small",
			[]CostValue{{"k", 130}}, ""},
		{"cel by route name", `[{"metadataKey":"k","type":"cel","cel":
			"route_name == 'route-a' ? total_tokens * 2u : total_tokens"}]`, "m",
			[]CostValue{{"k", 260}}, ""},
		{"cel int result", `[{"metadataKey":"k","type":"cel","cel":"int(output_tokens) * 2"}]`, "m",
			[]CostValue{{"k", 60}}, ""},
		{"cel constant", `[{"metadataKey":"k","type":"cel","cel":"1"}]`, "m", []CostValue{{"k", 1}}, ""},
		{"failing cel is left out", `[
			{"metadataKey":"a","type":"input"},
			{"metadataKey":"k","type":"cel","cel":"int(output_tokens) - int(input_tokens)"},
			{"metadataKey":"b","type":"output"}]`, "m",
			[]CostValue{{"a", 100}, {"b", 30}}, `cost "k": result is negative (-70)`},
		{"dyn result of the wrong type", `[{"metadataKey":"k","type":"cel","cel":"model == 'm' ? dyn('x') : dyn(1)"}]`, "m",
			nil, `cost "k": result is a string, not an int or a uint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, `{"costs":`+tt.costs+`}`)
			got, err := c.AppendCosts(nil, u, tt.model, "10.0.0.7:8000", "route-a")
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tt.err)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestAppendCostsAppends(t *testing.T) {
	c := mustParse(t, `{"costs":[{"metadataKey":"k","type":"total"}]}`)
	dst := make([]CostValue, 1, 4)
	got, err := c.AppendCosts(dst, CostUsage{Usage: Usage{TotalTokens: 5}}, "m", "b", "r")
	require.NoError(t, err)
	require.Equal(t, []CostValue{{}, {"k", 5}}, got)
	require.Same(t, &dst[0], &got[0])
}

func TestNeedsBackend(t *testing.T) {
	require.False(t, mustParse(t, `{"costs":[{"metadataKey":"k","type":"cel","cel":"model == 'a' ? 1 : 2"}]}`).NeedsBackend())
	require.True(t, mustParse(t, `{"costs":[{"metadataKey":"k","type":"cel","cel":"backend == 'a' ? 1 : 2"}]}`).NeedsBackend())
}

func TestNeedsRouteName(t *testing.T) {
	require.False(t, mustParse(t, `{"costs":[{"metadataKey":"k","type":"cel","cel":"model == 'a' ? 1 : 2"}]}`).NeedsRouteName())
	require.True(t, mustParse(t, `{"costs":[{"metadataKey":"k","type":"cel","cel":"route_name == 'a' ? 1 : 2"}]}`).NeedsRouteName())
}

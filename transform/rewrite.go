package transform

import (
	"math/rand/v2"
	"slices"

	"github.com/tidwall/gjson"
)

// ModelRewriteHeader names a target of the request's rewrite rule to use
// instead of a weighted random pick. A value that is not a target of the
// rule is ignored, so that a client cannot reach a model no rule offers.
const ModelRewriteHeader = "x-gateway-model-name-rewrite"

// rewriteRule is a compiled RewriteRule.
type rewriteRule struct {
	targets []weightedModel // in config order
	total   uint64          // sum of the weights
}

// weightedModel owns the weights in [previous upTo, upTo).
type weightedModel struct {
	model string
	upTo  uint64
}

// named returns the rule's own copy of target model, or "" when the rule
// has no such target.
func (r *rewriteRule) named(model string) string {
	for _, t := range r.targets {
		if t.model == model {
			return t.model
		}
	}
	return ""
}

// pick returns the target owning n, for n in [0, total).
func (r *rewriteRule) pick(n uint64) string {
	for _, t := range r.targets {
		if n < t.upTo {
			return t.model
		}
	}
	return r.targets[len(r.targets)-1].model
}

// target returns the model to send upstream for a request for model, and
// whether it differs. forced is the ModelRewriteHeader value, or "".
func (c *Config) target(model, forced string) (string, bool) {
	rule := c.rules[model]
	if rule == nil {
		rule = c.fallback
	}
	if rule == nil {
		return model, false
	}
	t := rule.named(forced)
	switch {
	case t != "":
	case len(rule.targets) == 1:
		t = rule.targets[0].model
	default:
		t = rule.pick(rand.Uint64N(rule.total))
	}
	return t, t != model
}

// edit is a replacement of body[at:end] with text.
type edit struct {
	at, end int
	text    []byte
}

// applyEdits returns a copy of body with the edits (sorted, not overlapping)
// applied, and where the span s of body lands in it.
func applyEdits(body []byte, edits []edit, s span) ([]byte, span) {
	n := len(body)
	for _, e := range edits {
		n += len(e.text) - (e.end - e.at)
	}
	out := make([]byte, 0, n)
	last := 0
	moved := s
	for _, e := range edits {
		out = append(out, body[last:e.at]...)
		out = append(out, e.text...)
		last = e.end
		if e.end <= s.start {
			delta := len(e.text) - (e.end - e.at)
			moved.start += delta
			moved.end += delta
		}
	}
	return append(out, body[last:]...), moved
}

// editRequest returns the byte edits that send target instead of the
// client's model and, when askUsage, set stream_options.include_usage to
// true. Everything else in the body stays byte for byte.
func editRequest(body []byte, r *Request, target string, rewrite, askUsage bool) []edit {
	var edits []edit
	if rewrite {
		edits = append(edits, edit{r.model.start, r.model.end, gjson.AppendJSONString(nil, target)})
	}
	if askUsage {
		switch {
		case r.includeUsage.ok(): // present but not true
			edits = append(edits, edit{r.includeUsage.start, r.includeUsage.end, []byte("true")})
		case r.streamOptionsNull:
			edits = append(edits, edit{r.streamOptions.start, r.streamOptions.end, []byte(`{"include_usage":true}`)})
		case r.streamOptions.ok(): // an object without include_usage
			text := []byte(`"include_usage":true,`)
			if emptyContainer(unsafeString(body[r.streamOptions.start:r.streamOptions.end])) {
				text = text[:len(text)-1]
			}
			at := r.streamOptions.start + 1
			edits = append(edits, edit{at, at, text})
		default:
			at := r.open + 1
			edits = append(edits, edit{at, at, []byte(`"stream_options":{"include_usage":true},`)})
		}
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.at - b.at })
	return edits
}

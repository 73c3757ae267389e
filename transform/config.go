package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/strictjson"
)

// Config is the ai_router filter_config. Get one from Parse and do not change
// it afterwards: it is then safe for concurrent use. README.md documents
// every field.
type Config struct {
	// MaxRequestBodyBytes is the largest request body buffered; a larger
	// one gets 413. Default 4 MiB.
	MaxRequestBodyBytes int64 `json:"maxRequestBodyBytes"`
	// PassThroughPaths are the paths handed to the backend unchecked
	// (normalised paths; "/x/*" takes every path below /x). Any other path
	// that is not an endpoint ai_router checks gets 404.
	PassThroughPaths []string `json:"passThroughPaths"`
	// RejectUnknownPaths is deprecated: unknown paths always get 404 now.
	// true is accepted and changes nothing; false is refused, naming
	// PassThroughPaths ("/*" passes every unknown path, the old default).
	RejectUnknownPaths *bool `json:"rejectUnknownPaths"`
	// Models, when set, are the only models a client may ask for (others
	// get 404 model_not_found) and the answer to GET /v1/models.
	Models []Model `json:"models"`
	// Rewrites map a requested model to weighted target models.
	Rewrites []RewriteRule `json:"rewrites"`
	// TokenAccounting makes streamed chat and completion requests ask the
	// server for usage (stream_options.include_usage). Default true; costs
	// and budgets need it.
	TokenAccounting bool `json:"tokenAccounting"`
	// Costs are the token costs written to dynamic metadata at the end of
	// each response, for Envoy's rate limit filter.
	Costs []Cost `json:"costs"`
	// Budget is an optional local token budget per client key.
	Budget *BudgetConfig `json:"budget"`
	// DefaultMaxTokens is the completion assumed for a request without
	// max_tokens when reserving budget and estimating unreadable responses
	// (estimate.go). Default 4096.
	DefaultMaxTokens uint64 `json:"defaultMaxTokens"`

	known      map[string]string // listed and rewritten model names, to intern
	seen       *modelNames       // unlisted model names requests asked for, interned
	rules      map[string]*rewriteRule
	fallback   *rewriteRule // the rule without a model, if any
	costs      []compiledCost
	modelsBody []byte
	budgets    *Budgets
	passThru   passThrough
	needsRoute bool            // a CEL cost names route_name
	needsBack  bool            // a CEL cost names backend
	tagged     map[string]bool // model names that are stat tag values of their own
}

// Model is an entry of the model list.
type Model struct {
	Name    string `json:"name"`
	OwnedBy string `json:"ownedBy"` // owned_by in /v1/models; default "envoy-inferencepool"
	Created int64  `json:"created"` // created in /v1/models, Unix seconds
}

// RewriteRule sends requests for Model to one of Targets, picked at random
// in proportion to the weights (InferenceModelRewrite semantics).
type RewriteRule struct {
	// Model is the requested model the rule applies to. Empty: every model
	// that no other rule names.
	Model   string          `json:"model"`
	Targets []RewriteTarget `json:"targets"`
}

// RewriteTarget is a model a RewriteRule may send requests to.
type RewriteTarget struct {
	Model  string `json:"model"`
	Weight int64  `json:"weight"` // relative share, 1 to 1,000,000; default 1
}

// UnmarshalJSON gives Weight its default of 1 when the field is absent.
func (t *RewriteTarget) UnmarshalJSON(data []byte) error {
	type plain RewriteTarget
	p := plain{Weight: 1}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*t = RewriteTarget(p)
	return nil
}

// Cost is one token cost written to dynamic metadata.
type Cost struct {
	MetadataKey string `json:"metadataKey"`
	// Type is input, output, cached_input, cache_creation_input, total,
	// reasoning or cel.
	Type string `json:"type"`
	// CEL is the expression of a cel cost, over model, backend,
	// input_tokens, cached_input_tokens, cache_creation_input_tokens,
	// output_tokens, total_tokens and reasoning_tokens; it must return a
	// non-negative int or a uint.
	CEL string `json:"cel"`
}

// BudgetConfig is a local token budget: each value of Header may spend
// Tokens tokens per Window.
type BudgetConfig struct {
	Header  string `json:"header"`  // request header naming the client, e.g. x-api-key; its value is hashed
	Tokens  uint64 `json:"tokens"`  // tokens per window, > 0
	Window  string `json:"window"`  // Go duration, at least 1s; default "1m"
	MaxKeys int    `json:"maxKeys"` // clients tracked at once (rounded up to a multiple of 64); default 100000
}

// Defaults.
const (
	DefaultMaxRequestBodyBytes = 4 << 20
	DefaultOwnedBy             = "envoy-inferencepool"
	defaultWindow              = "1m"
	defaultMaxKeys             = 100_000
	maxWeight                  = 1_000_000
)

// Parse reads a filter_config. Empty input gives the defaults. Unknown
// fields and bad values are errors that name the field, such as
// "rewrites[0].targets[1].weight: must be > 0".
func Parse(data []byte) (*Config, error) {
	c := &Config{MaxRequestBodyBytes: DefaultMaxRequestBodyBytes, TokenAccounting: true}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && string(trimmed) != "null" {
		if err := strictjson.Decode(trimmed, c); err != nil {
			return nil, err
		}
	}
	if err := c.compile(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) compile() error {
	if c.MaxRequestBodyBytes <= 0 {
		return errors.New("maxRequestBodyBytes: must be > 0")
	}
	if c.RejectUnknownPaths != nil && !*c.RejectUnknownPaths {
		return errors.New(`rejectUnknownPaths: false is no longer supported: unknown paths get 404; ` +
			`list the paths to pass through in passThroughPaths (["/*"] passes every unknown path)`)
	}
	var err error
	if c.passThru, err = compilePassThrough(c.PassThroughPaths); err != nil {
		return err
	}
	c.known = make(map[string]string)
	c.seen = &modelNames{}
	for i := range c.Models {
		m := &c.Models[i]
		if m.Name == "" {
			return fmt.Errorf("models[%d].name: must not be empty", i)
		}
		if err := checkModelName(m.Name); err != nil {
			return fmt.Errorf("models[%d].name: %w", i, err)
		}
		if _, dup := c.known[m.Name]; dup {
			return fmt.Errorf("models[%d].name: duplicate model %q", i, m.Name)
		}
		if m.OwnedBy == "" {
			m.OwnedBy = DefaultOwnedBy
		}
		c.known[m.Name] = m.Name
	}
	if err := c.compileRewrites(); err != nil {
		return err
	}
	if err := c.compileCosts(); err != nil {
		return err
	}
	if err := c.compileBudget(); err != nil {
		return err
	}
	if err := c.compileEstimates(); err != nil {
		return err
	}
	c.modelsBody = modelsBody(c.Models)
	c.tagged = make(map[string]bool)
	for name := range c.known {
		c.tagged[name] = true
	}
	for _, r := range c.rules {
		for _, t := range r.targets {
			c.tagged[t.model] = true
		}
	}
	if c.fallback != nil {
		for _, t := range c.fallback.targets {
			c.tagged[t.model] = true
		}
	}
	return nil
}

func (c *Config) compileRewrites() error {
	c.rules = make(map[string]*rewriteRule)
	for i, r := range c.Rewrites {
		path := fmt.Sprintf("rewrites[%d]", i)
		switch {
		case r.Model == "" && c.fallback != nil:
			return fmt.Errorf("%s.model: only one rule may leave model empty", path)
		case r.Model != "" && c.rules[r.Model] != nil:
			return fmt.Errorf("%s.model: duplicate rule for model %q", path, r.Model)
		case r.Model != "" && len(c.Models) > 0 && c.known[r.Model] == "":
			return fmt.Errorf("%s.model: %q is not in models", path, r.Model)
		case r.Model != "" && checkModelName(r.Model) != nil:
			return fmt.Errorf("%s.model: %w", path, checkModelName(r.Model))
		case len(r.Targets) == 0:
			return fmt.Errorf("%s.targets: must hold at least one target", path)
		}
		rule := &rewriteRule{}
		for j, t := range r.Targets {
			tpath := fmt.Sprintf("%s.targets[%d]", path, j)
			switch {
			case t.Model == "":
				return fmt.Errorf("%s.model: must not be empty", tpath)
			case rule.named(t.Model) != "":
				return fmt.Errorf("%s.model: duplicate target %q", tpath, t.Model)
			case t.Weight <= 0:
				return fmt.Errorf("%s.weight: must be > 0", tpath)
			case t.Weight > maxWeight:
				return fmt.Errorf("%s.weight: must be at most %d", tpath, maxWeight)
			}
			rule.total += uint64(t.Weight)
			rule.targets = append(rule.targets, weightedModel{model: t.Model, upTo: rule.total})
		}
		if r.Model == "" {
			c.fallback = rule
			continue
		}
		c.rules[r.Model] = rule
		c.known[r.Model] = r.Model
	}
	return nil
}

// reservedMetadataKeys are the keys of CostNamespace the filters write
// besides the costs: a cost under one of them would be overwritten, or be
// read back as something else.
var reservedMetadataKeys = map[string]bool{
	UsageEstimateKey: true, ProviderNameKey: true, BackendNameKey: true, CacheCreationInputTokensKey: true,
}

func (c *Config) compileCosts() error {
	if len(c.Costs) > 0 && !c.TokenAccounting {
		return errors.New("costs: need tokenAccounting: streamed responses carry no usage without it")
	}
	keys := make(map[string]bool)
	for i, cost := range c.Costs {
		path := fmt.Sprintf("costs[%d]", i)
		if cost.MetadataKey == "" {
			return fmt.Errorf("%s.metadataKey: must not be empty", path)
		}
		if keys[cost.MetadataKey] {
			return fmt.Errorf("%s.metadataKey: duplicate key %q", path, cost.MetadataKey)
		}
		if reservedMetadataKeys[cost.MetadataKey] {
			return fmt.Errorf("%s.metadataKey: %q is a key the filters write themselves", path, cost.MetadataKey)
		}
		keys[cost.MetadataKey] = true
		compiled, err := compileCost(cost)
		if err != nil {
			return fmt.Errorf("%s.%w", path, err)
		}
		c.costs = append(c.costs, compiled)
		// A plain text search: a false hit only costs one attribute read.
		c.needsRoute = c.needsRoute || strings.Contains(cost.CEL, "route_name")
		c.needsBack = c.needsBack || strings.Contains(cost.CEL, "backend")
	}
	return nil
}

func (c *Config) compileBudget() error {
	b := c.Budget
	if b == nil {
		return nil
	}
	if !c.TokenAccounting {
		return errors.New("budget: needs tokenAccounting: streamed responses carry no usage without it")
	}
	if b.Header == "" {
		return errors.New("budget.header: must not be empty")
	}
	b.Header = strings.ToLower(b.Header) // Envoy's header keys are lower-case
	if b.Tokens == 0 {
		return errors.New("budget.tokens: must be > 0")
	}
	if b.Window == "" {
		b.Window = defaultWindow
	}
	window, err := time.ParseDuration(b.Window)
	if err != nil {
		return fmt.Errorf("budget.window: %w", err)
	}
	if window < time.Second {
		return errors.New("budget.window: must be at least 1s")
	}
	if b.MaxKeys == 0 {
		b.MaxKeys = defaultMaxKeys
	}
	if b.MaxKeys < 0 {
		return errors.New("budget.maxKeys: must be > 0")
	}
	c.budgets = NewBudgets(b.Tokens, window, b.MaxKeys)
	return nil
}

// Budgets returns the local token budgets, or nil when none is configured.
// Read the client's key from the Budget.Header request header.
func (c *Config) Budgets() *Budgets { return c.budgets }

// ServesModels reports whether GET /v1/models is answered from the config.
func (c *Config) ServesModels() bool { return len(c.Models) > 0 }

// ModelsBody is the JSON answer to GET /v1/models, in OpenAI's format. The
// caller must not change it.
func (c *Config) ModelsBody() []byte { return c.modelsBody }

func modelsBody(models []Model) []byte {
	b := []byte(`{"object":"list","data":[`)
	for i, m := range models {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = gjson.AppendJSONString(b, m.Name)
		b = fmt.Appendf(b, `,"object":"model","created":%d,"owned_by":`, m.Created)
		b = gjson.AppendJSONString(b, m.OwnedBy)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

package transform

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// CostValue is one computed cost: write Value under MetadataKey in the
// dynamic metadata namespace CostNamespace.
type CostValue struct {
	MetadataKey string
	Value       uint64
}

// CostNamespace is the dynamic metadata namespace of the costs, the one Envoy
// AI Gateway writes, so that existing rate limit configs keep working.
const CostNamespace = "io.envoy.ai_gateway"

// costKind is a Cost.Type.
type costKind uint8

const (
	costInput costKind = iota
	costOutput
	costCachedInput
	costTotal
	costReasoning
	costCacheCreationInput
	costCEL
)

var costKinds = map[string]costKind{
	"input":        costInput,
	"output":       costOutput,
	"cached_input": costCachedInput,
	"total":        costTotal,
	"reasoning":    costReasoning,
	"cel":          costCEL,
	// AI Gateway's CacheCreationInputToken: prompt-cache writes, which a
	// provider such as Anthropic bills apart (and counts in input too).
	"cache_creation_input": costCacheCreationInput,
}

type compiledCost struct {
	key  string
	kind costKind
	prog cel.Program // for costCEL
}

// The CEL variables, with Envoy AI Gateway's names and types.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("model", cel.StringType),
		cel.Variable("backend", cel.StringType),
		cel.Variable("route_name", cel.StringType),
		cel.Variable("input_tokens", cel.UintType),
		cel.Variable("cached_input_tokens", cel.UintType),
		cel.Variable("cache_creation_input_tokens", cel.UintType),
		cel.Variable("output_tokens", cel.UintType),
		cel.Variable("total_tokens", cel.UintType),
		cel.Variable("reasoning_tokens", cel.UintType),
	)
})

// compileCost checks a Cost; errors start with the field at fault.
func compileCost(c Cost) (compiledCost, error) {
	kind, ok := costKinds[c.Type]
	if !ok {
		return compiledCost{}, fmt.Errorf("type: %q is not one of input, output, cached_input, cache_creation_input, total, reasoning, cel", c.Type)
	}
	out := compiledCost{key: c.MetadataKey, kind: kind}
	if kind != costCEL {
		if c.CEL != "" {
			return out, errors.New("cel: only allowed with type cel")
		}
		return out, nil
	}
	if c.CEL == "" {
		return out, errors.New("cel: required with type cel")
	}
	env, err := celEnv()
	if err != nil {
		return out, fmt.Errorf("cel: environment: %w", err)
	}
	ast, issues := env.Compile(c.CEL)
	if issues != nil && issues.Err() != nil {
		return out, fmt.Errorf("cel: compile error: %w", issues.Err())
	}
	switch t := ast.OutputType(); {
	case t.IsExactType(cel.IntType), t.IsExactType(cel.UintType), t.IsExactType(cel.DynType):
	default:
		return out, fmt.Errorf("cel: must return an int or a uint, not %s", t)
	}
	if out.prog, err = env.Program(ast); err != nil {
		return out, fmt.Errorf("cel: %w", err)
	}
	// As Envoy AI Gateway does: an expression that fails on zero usage is
	// rejected now rather than at every response.
	if _, err := evalCost(out.prog, &costVars{model: "dummy", backend: "dummy", routeName: "dummy"}); err != nil {
		return out, fmt.Errorf("cel: on zero usage: %w", err)
	}
	return out, nil
}

// CostUsage is what the costs of a response are computed from: its usage,
// and the input tokens the provider wrote to its prompt cache, which
// Anthropic reports (and bills) apart and Usage has no field for (they count
// in its InputTokens too). The meter reads the usage; the module gets the
// cache writes from ai_upstream (CacheCreationInputTokensKey), 0 otherwise.
type CostUsage struct {
	Usage
	CacheCreationInputTokens uint64
}

// NeedsRouteName reports whether a CEL cost may read route_name, so that
// the module asks Envoy for it only then.
func (c *Config) NeedsRouteName() bool { return c.needsRoute }

// NeedsBackend reports whether a CEL cost may read backend, so that the
// module asks Envoy for the upstream address only then.
func (c *Config) NeedsBackend() bool { return c.needsBack }

// AppendCosts appends to dst the configured costs of a response with usage u, in
// config order. model, backend and routeName are the CEL variables model,
// backend and route_name, as Envoy AI Gateway names them: the model the
// client asked for (Decision.Model, before any rewrite), the backend that
// served it and the route that chose it. A CEL cost that fails is left out
// and its error joined into the returned error.
func (c *Config) AppendCosts(dst []CostValue, u CostUsage, model, backend, routeName string) ([]CostValue, error) {
	var errs []error
	var vars *costVars
	for _, cost := range c.costs {
		var v uint64
		switch cost.kind {
		case costInput:
			v = u.InputTokens
		case costOutput:
			v = u.OutputTokens
		case costCachedInput:
			v = u.CachedInputTokens
		case costCacheCreationInput:
			v = u.CacheCreationInputTokens
		case costTotal:
			v = u.TotalTokens
		case costReasoning:
			v = u.ReasoningTokens
		case costCEL:
			if vars == nil {
				vars = &costVars{model: model, backend: backend, routeName: routeName, usage: u}
			}
			var err error
			if v, err = evalCost(cost.prog, vars); err != nil {
				errs = append(errs, fmt.Errorf("cost %q: %w", cost.key, err))
				continue
			}
		}
		dst = append(dst, CostValue{MetadataKey: cost.key, Value: v})
	}
	return dst, errors.Join(errs...)
}

func evalCost(prog cel.Program, vars *costVars) (uint64, error) {
	out, _, err := prog.Eval(vars)
	if err != nil {
		return 0, err
	}
	switch v := out.(type) {
	case types.Uint:
		return uint64(v), nil
	case types.Int:
		if v < 0 {
			return 0, fmt.Errorf("result is negative (%d)", int64(v))
		}
		return uint64(v), nil
	}
	return 0, fmt.Errorf("result is a %s, not an int or a uint", typeName(out))
}

func typeName(v ref.Val) string {
	if v == nil {
		return "nil"
	}
	return v.Type().TypeName()
}

// costVars is the CEL activation of one response; it resolves names without
// building a map.
type costVars struct {
	model, backend, routeName string
	usage                     CostUsage
}

func (v *costVars) ResolveName(name string) (any, bool) {
	switch name {
	case "model":
		return types.String(v.model), true
	case "backend":
		return types.String(v.backend), true
	case "route_name":
		return types.String(v.routeName), true
	case "input_tokens":
		return types.Uint(v.usage.InputTokens), true
	case "cached_input_tokens":
		return types.Uint(v.usage.CachedInputTokens), true
	case "cache_creation_input_tokens":
		return types.Uint(v.usage.CacheCreationInputTokens), true
	case "output_tokens":
		return types.Uint(v.usage.OutputTokens), true
	case "total_tokens":
		return types.Uint(v.usage.TotalTokens), true
	case "reasoning_tokens":
		return types.Uint(v.usage.ReasoningTokens), true
	}
	return nil, false
}

func (v *costVars) Parent() interpreter.Activation { return nil }

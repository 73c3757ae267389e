package picker

import (
	"slices"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/filter/saturation"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/picker/maxscore"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/picker/weightedrandom"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/inflight"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/kvcache"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/loraaffinity"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/queue"
)

// The factories: one per plugin type, handing the plugin its own
// parameters (a section of the pool's configuration, of the plugin's own
// type, already defaulted and validated by it; see framework.Params).

var filterFactories = map[string]func(p *PoolConfig) (framework.Filter, error){
	saturation.Type: func(p *PoolConfig) (framework.Filter, error) {
		return saturation.New(p.Saturation), nil
	},
}

var scorerFactories = map[string]func(p *PoolConfig) (framework.Scorer, error){
	queue.Type:        func(*PoolConfig) (framework.Scorer, error) { return queue.New(), nil },
	kvcache.Type:      func(*PoolConfig) (framework.Scorer, error) { return kvcache.New(), nil },
	loraaffinity.Type: func(*PoolConfig) (framework.Scorer, error) { return loraaffinity.New(), nil },
	inflight.Type:     func(*PoolConfig) (framework.Scorer, error) { return inflight.New(), nil },
	prefix.Type:       func(p *PoolConfig) (framework.Scorer, error) { return prefix.New(p.Prefix) },
}

var pickerFactories = map[string]func(p *PoolConfig) (framework.Picker, error){
	maxscore.Type:       func(*PoolConfig) (framework.Picker, error) { return maxscore.New(), nil },
	weightedrandom.Type: func(*PoolConfig) (framework.Picker, error) { return weightedrandom.New(), nil },
}

func typeNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

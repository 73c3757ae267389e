// Package metrics turns a model server's Prometheus text exposition into the
// few numbers the scheduler reads: waiting and running requests, KV-cache use,
// LoRA adapters and cache geometry.
package metrics

import "fmt"

// Engine names accepted in configuration.
const (
	EngineVLLM   = "vllm"
	EngineSGLang = "sglang"
	EngineTRTLLM = "trtllm"
)

// Names are the metric family names read from one engine's exposition.
// An empty name means the engine does not report that number. Names is
// comparable so that it can be part of a scrape target's identity.
type Names struct {
	Waiting         string // queued requests, summed across series
	Running         string // running requests, summed across series
	KVUsage         string // KV-cache use in [0,1], averaged across series
	KVUsageFallback string // read when KVUsage is absent (older vLLM)
	LoRAInfo        string // vLLM-style lora_requests_info; value is a timestamp
	CacheConfig     string // info metric whose labels give the cache geometry:
	BlockSizeLabel  string // its label holding tokens per KV block (vLLM block_size, SGLang page_size)
	NumBlocksLabel  string // its label holding the KV blocks (vLLM num_gpu_blocks, SGLang num_pages)
}

// ForEngine returns the default names for an engine (DESIGN.md section 5).
func ForEngine(engine string) (Names, error) {
	switch engine {
	case EngineVLLM, "":
		return Names{
			Waiting:         "vllm:num_requests_waiting",
			Running:         "vllm:num_requests_running",
			KVUsage:         "vllm:kv_cache_usage_perc",
			KVUsageFallback: "vllm:gpu_cache_usage_perc",
			LoRAInfo:        "vllm:lora_requests_info",
			CacheConfig:     "vllm:cache_config_info",
			BlockSizeLabel:  "block_size",
			NumBlocksLabel:  "num_gpu_blocks",
		}, nil
	case EngineSGLang:
		return Names{
			Waiting: "sglang:num_queue_reqs",
			Running: "sglang:num_running_reqs",
			KVUsage: "sglang:token_usage",
			// SGLang names its cache geometry after pages, not blocks (as
			// the Inference Extension's and llm-d's SGLang mappings read it).
			CacheConfig:    "sglang:cache_config_info",
			BlockSizeLabel: "page_size",
			NumBlocksLabel: "num_pages",
		}, nil
	case EngineTRTLLM:
		return Names{
			Waiting: "trtllm_num_requests_waiting",
			Running: "trtllm_num_requests_running",
			KVUsage: "trtllm_kv_cache_utilization",
		}, nil
	}
	return Names{}, fmt.Errorf("unknown engine %q (known: vllm, sglang, trtllm)", engine)
}

// list returns the non-empty names, the families the line filter keeps.
func (n *Names) list(dst []string) []string {
	for _, s := range [...]string{n.Waiting, n.Running, n.KVUsage, n.KVUsageFallback, n.LoRAInfo, n.CacheConfig} {
		if s != "" {
			dst = append(dst, s)
		}
	}
	return dst
}

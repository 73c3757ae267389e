"""CPU a vLLM-like server spends producing one /metrics exposition.

Builds, with prometheus_client, the registry vllm_metrics_v0.10.2_full.txt
was written from (the vLLM v0.10.2 families, label names and buckets of
vllm/v1/metrics/loggers.py, one engine; the http_ families of
prometheus-fastapi-instrumentator; the default python_/process_ collectors),
and times generate_latest, which vLLM's /metrics handler calls once per
scrape, for the whole registry and for only the families the picker reads.
HTTP and ASGI overhead come on top.

    python3 picker/testdata/vllm_exposition_cost.py   # Debian: python3-prometheus-client
"""
import time

import prometheus_client as pc
from prometheus_client import Counter, Gauge, Histogram, Summary

R = pc.REGISTRY
L = ["model_name", "engine"]
V = ["meta-llama/Llama-3.1-8B-Instruct", "0"]


def gauge(name, v):
    Gauge(name, name, L).labels(*V).set(v)


def counter(name, v, extra=None):
    if extra:
        c = Counter(name, name, L + [extra[0]])
        for value in extra[1]:
            c.labels(*V, value).inc(v)
    else:
        Counter(name, name, L).labels(*V).inc(v)


def hist(name, buckets, observations):
    h = Histogram(name, name, L, buckets=buckets).labels(*V)
    for o in observations:
        h.observe(o)


b125 = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
tpot = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
lat = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
obs = [0.01 * i for i in range(1, 300)]

gauge("vllm:num_requests_running", 12)
gauge("vllm:num_requests_waiting", 3)
gauge("vllm:gpu_cache_usage_perc", 0.41)
gauge("vllm:kv_cache_usage_perc", 0.41)
for c in ["vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_hits", "vllm:prefix_cache_queries",
          "vllm:prefix_cache_hits", "vllm:num_preemptions", "vllm:prompt_tokens", "vllm:generation_tokens"]:
    counter(c, 1000)
counter("vllm:request_success", 100, ("finished_reason", ["stop", "length", "abort"]))
for h in ["vllm:request_prompt_tokens", "vllm:request_generation_tokens", "vllm:request_max_num_generation_tokens",
          "vllm:request_params_max_tokens"]:
    hist(h, b125, [x * 1000 for x in obs])
hist("vllm:iteration_tokens_total", [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384], [x * 100 for x in obs])
hist("vllm:request_params_n", [1, 2, 5, 10, 20], [1] * 10)
hist("vllm:time_to_first_token_seconds", [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                          5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0], obs)
for h in ["vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds", "vllm:request_time_per_output_token_seconds"]:
    hist(h, tpot, obs)
hist("vllm:time_per_prefill_token_request_seconds", [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0], obs)
for h in ["vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:request_inference_time_seconds",
          "vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds"]:
    hist(h, lat, [x * 10 for x in obs])
lora = Gauge("vllm:lora_requests_info", "lora", ["max_lora", "waiting_lora_adapters", "running_lora_adapters"])
for w, r in [("", ""), ("", "sql-lora"), ("sql-lora", "chat-lora"), ("", "chat-lora,sql-lora"), ("chat-lora", "sql-lora")]:
    lora.labels("2", w, r).set_to_current_time()
cc = ["block_size", "cache_dtype", "calculate_kv_scales", "cpu_kvcache_space_bytes", "cpu_offload_gb",
      "enable_prefix_caching", "engine", "gpu_memory_utilization", "is_attention_free", "kv_sharing_fast_prefill",
      "mamba_cache_dtype", "mamba_page_size_padded", "mamba_ssm_cache_dtype", "num_cpu_blocks", "num_gpu_blocks",
      "num_gpu_blocks_override", "prefix_caching_hash_algo", "sliding_window", "swap_space", "swap_space_bytes"]
Gauge("vllm:cache_config_info", "cache", cc).labels(*["x"] * len(cc)).set(1)
handlers = [("/v1/chat/completions", "POST"), ("/v1/completions", "POST"), ("/v1/models", "GET")]
reqs = Counter("http_requests", "r", ["handler", "method", "status"])
size_in = Summary("http_request_size_bytes", "s", ["handler"])
size_out = Summary("http_response_size_bytes", "s", ["handler"])
highr = Histogram("http_request_duration_highr_seconds", "h", buckets=[0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1,
                  1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60])
dur = Histogram("http_request_duration_seconds", "d", ["handler", "method"], buckets=[0.1, 0.5, 1])
for h, m in handlers:
    reqs.labels(h, m, "2xx").inc(10)
    size_in.labels(h).observe(2600)
    size_out.labels(h).observe(900)
    dur.labels(h, m).observe(3.5)
    highr.observe(3.5)


def cost(registry, n=300):
    t0 = time.process_time()
    for _ in range(n):
        out = pc.generate_latest(registry)
    return (time.process_time() - t0) / n, len(out)


full, size = cost(R)
wanted = R.restricted_registry(["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                                "vllm:gpu_cache_usage_perc", "vllm:lora_requests_info", "vllm:cache_config_info"])
few, few_size = cost(wanted)
print(f"prometheus_client {pc.__version__ if hasattr(pc, '__version__') else ''}".strip())
print(f"whole exposition: {size} B, {full * 1e6:.0f} µs CPU per generate_latest")
print(f"the 6 families the picker reads: {few_size} B, {few * 1e6:.0f} µs CPU")

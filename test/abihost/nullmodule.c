// A module that does nothing: every hook returns Continue without a single
// callback. abihost --bench with it measures the host's own cost per
// exchange (stream setup, header maps, body frames), the floor under
// BenchmarkABIRoundTrip's ns/req. Built by build.sh as libabihostnull.so.
#include "abi.h"

static int cfg, flt;

envoy_dynamic_module_type_abi_version_module_ptr envoy_dynamic_module_on_program_init(void) {
  return ENVOY_DYNAMIC_MODULES_ABI_VERSION;
}
envoy_dynamic_module_type_http_filter_config_module_ptr envoy_dynamic_module_on_http_filter_config_new(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, envoy_dynamic_module_type_envoy_buffer n,
    envoy_dynamic_module_type_envoy_buffer b) {
  (void)c, (void)n, (void)b;
  return &cfg;
}
void envoy_dynamic_module_on_http_filter_config_destroy(envoy_dynamic_module_type_http_filter_config_module_ptr c) {
  (void)c;
}
envoy_dynamic_module_type_http_filter_module_ptr envoy_dynamic_module_on_http_filter_new(
    envoy_dynamic_module_type_http_filter_config_module_ptr c, envoy_dynamic_module_type_http_filter_envoy_ptr f) {
  (void)c, (void)f;
  return &flt;
}
#define HOOK(ret, name, ...)                                                                                   \
  ret envoy_dynamic_module_on_http_filter_##name(envoy_dynamic_module_type_http_filter_envoy_ptr e,             \
                                                 envoy_dynamic_module_type_http_filter_module_ptr m __VA_ARGS__) { \
    (void)e, (void)m;                                                                                          \
    return (ret)0;                                                                                             \
  }
HOOK(envoy_dynamic_module_type_on_http_filter_request_headers_status, request_headers, , bool eos)
HOOK(envoy_dynamic_module_type_on_http_filter_request_body_status, request_body, , bool eos)
HOOK(envoy_dynamic_module_type_on_http_filter_request_trailers_status, request_trailers)
HOOK(envoy_dynamic_module_type_on_http_filter_response_headers_status, response_headers, , bool eos)
HOOK(envoy_dynamic_module_type_on_http_filter_response_body_status, response_body, , bool eos)
HOOK(envoy_dynamic_module_type_on_http_filter_response_trailers_status, response_trailers)
void envoy_dynamic_module_on_http_filter_stream_complete(envoy_dynamic_module_type_http_filter_envoy_ptr e,
                                                         envoy_dynamic_module_type_http_filter_module_ptr m) {
  (void)e, (void)m;
}
void envoy_dynamic_module_on_http_filter_destroy(envoy_dynamic_module_type_http_filter_module_ptr m) { (void)m; }
void envoy_dynamic_module_on_http_filter_scheduled(envoy_dynamic_module_type_http_filter_envoy_ptr e,
                                                   envoy_dynamic_module_type_http_filter_module_ptr m, uint64_t id) {
  (void)e, (void)m, (void)id;
}
void envoy_dynamic_module_on_http_filter_config_scheduled(envoy_dynamic_module_type_http_filter_config_envoy_ptr e,
                                                          envoy_dynamic_module_type_http_filter_config_module_ptr m,
                                                          uint64_t id) {
  (void)e, (void)m, (void)id;
}

// The Envoy callbacks this package calls directly (batch.go, stream.go,
// bodychunks.go), declared once: as in Envoy's abi.h of the pinned SDK,
// with its buffer and header types spelled ip_buf and ip_header (one
// layout each; envoy_dynamic_module_type_envoy_buffer and _module_buffer
// share ip_buf's) and its C enums passed as 32-bit integers. Envoy
// provides them when it loads the library, as for the SDK.
#ifndef INFERENCEPOOL_ENVOY_CALLBACKS_H
#define INFERENCEPOOL_ENVOY_CALLBACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char* ptr;
  size_t length;
} ip_buf;

typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} ip_header;

// Headers.
bool envoy_dynamic_module_callback_http_get_header(void* f, uint32_t header_type, ip_buf key, ip_buf* result,
                                                   size_t index, size_t* optional_size);
size_t envoy_dynamic_module_callback_http_get_headers_size(void* f, uint32_t header_type);
bool envoy_dynamic_module_callback_http_get_headers(void* f, uint32_t header_type, ip_header* result_headers);
bool envoy_dynamic_module_callback_http_set_header(void* f, uint32_t header_type, ip_buf key, ip_buf value);

// Bodies.
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void* f, uint32_t body_type);
bool envoy_dynamic_module_callback_http_get_body_chunks(void* f, uint32_t body_type, ip_buf* result_buffer_vector);
bool envoy_dynamic_module_callback_http_received_buffered_request_body(void* f);

// Dynamic metadata and filter state.
bool envoy_dynamic_module_callback_http_get_metadata_string(void* f, uint32_t source, ip_buf ns, ip_buf key,
                                                            ip_buf* result);
bool envoy_dynamic_module_callback_http_get_metadata_number(void* f, uint32_t source, ip_buf ns, ip_buf key,
                                                            double* result);
bool envoy_dynamic_module_callback_http_get_metadata_list_size(void* f, uint32_t source, ip_buf ns, ip_buf key,
                                                               size_t* result);
bool envoy_dynamic_module_callback_http_get_metadata_list_string(void* f, uint32_t source, ip_buf ns, ip_buf key,
                                                                 size_t index, ip_buf* result);
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(void* f, ip_buf ns, ip_buf key, ip_buf value);
void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(void* f, ip_buf ns, ip_buf key, double value);
bool envoy_dynamic_module_callback_http_get_filter_state_bytes(void* f, ip_buf key, ip_buf* result);
bool envoy_dynamic_module_callback_http_set_filter_state_bytes(void* f, ip_buf key, ip_buf value);

// Attributes and the route.
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(void* f, uint32_t id, ip_buf* result);
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(void* f, uint32_t id, uint64_t* result);
void envoy_dynamic_module_callback_http_clear_route_cache(void* f);
const void* envoy_dynamic_module_callback_get_most_specific_route_config(void* f);

// Stats with tag values.
uint32_t envoy_dynamic_module_callback_http_filter_increment_counter(void* f, size_t id, ip_buf* labels,
                                                                     size_t labels_length, uint64_t value);
uint32_t envoy_dynamic_module_callback_http_filter_record_histogram_value(void* f, size_t id, ip_buf* labels,
                                                                          size_t labels_length, uint64_t value);

#endif

#!/bin/sh
# Builds test/abihost/abihost. The Makefile runs the same gcc line.
# abi.h comes from the pinned Envoy SDK in the Go module cache, so the host
# is compiled against exactly the ABI the library was built with.
set -eu
cd "$(dirname "$0")"
ABI_DIR="$(cd ../.. && go list -m -f '{{.Dir}}' github.com/envoyproxy/envoy/source/extensions/dynamic_modules)/abi"
OUT="${1:-abihost}"
exec gcc -O2 -g -Wall -Wextra -Wno-unused-parameter -pthread -rdynamic -I"$ABI_DIR" \
  -o "$OUT" main.c fm.c callbacks.c stats.c util.c -ldl -lm

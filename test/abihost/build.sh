#!/bin/sh
# Builds test/abihost/abihost (and dist/libabihostnull.so, the do-nothing
# module whose bench run is the host's own floor). The Makefile runs this.
# abi.h comes from the pinned Envoy SDK in the Go module cache, so the host
# is compiled against exactly the ABI the library is built with.
#
#   test/abihost/build.sh [abihost-output [null-module-output]]
set -eu
cd "$(dirname "$0")"
ABI_DIR="$(cd ../.. && go list -m -f '{{.Dir}}' github.com/envoyproxy/envoy/source/extensions/dynamic_modules)/abi"
OUT="${1:-abihost}"
NULL_OUT="${2:-../../dist/libabihostnull.so}"
mkdir -p "$(dirname "$NULL_OUT")"
gcc -O2 -g -Wall -Wextra -Wno-unused-parameter -pthread -rdynamic -I"$ABI_DIR" \
  -o "$OUT" main.c fm.c callbacks.c stats.c util.c -ldl -lm
gcc -O2 -Wall -shared -fPIC -I"$ABI_DIR" -o "$NULL_OUT" nullmodule.c

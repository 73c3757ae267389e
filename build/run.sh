#!/usr/bin/env bash
# make run: three simulated model servers on 127.0.0.1:8001-8003, then Envoy
# with envoy.yaml and libinferencepool.so on 127.0.0.1:10000.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIB_DIR=$ROOT/dist
SIM=$ROOT/.bin/llm-d-inference-sim
MODEL=${MODEL:-sim-model}
ENVOY_VERSION=${ENVOY_VERSION:-1.39.0}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

echo "starting 3 simulated vLLM servers (llm-d-inference-sim) on 127.0.0.1:8001-8003, model $MODEL"
POD_IP=127.0.0.1 "$SIM" --model "$MODEL" --force-dummy-tokenizer --port 8001 --data-parallel-size 3 \
  --max-num-seqs 8 --max-waiting-queue-length 200 --time-to-first-token 50ms --inter-token-latency 10ms \
  --enable-kvcache --kv-cache-size 1024 --time-factor-under-load 1 >"$LIB_DIR/sim.log" 2>&1 &
pids+=($!)
for port in 8001 8002 8003; do
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
done

export GODEBUG=cgocheck=0
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$LIB_DIR

try_message() {
  cat <<MSG

  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$MODEL","messages":[{"role":"user","content":"Hello!"}]}'

MSG
}

envoy_cmd=()
if [ -n "${ENVOY_BIN:-}" ]; then
  envoy_cmd=("$ENVOY_BIN")
elif command -v envoy >/dev/null 2>&1; then
  envoy_cmd=(envoy)
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "no envoy binary: running envoyproxy/envoy:v$ENVOY_VERSION in Docker (host network)"
  echo "Envoy on 127.0.0.1:10000, admin on 127.0.0.1:9901. Try:"; try_message
  docker run --rm --network host -e GODEBUG=cgocheck=0 \
    -e ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/dm -v "$LIB_DIR:/dm:ro" -v "$ROOT/envoy.yaml:/etc/envoy/envoy.yaml:ro" \
    "envoyproxy/envoy:v$ENVOY_VERSION" -c /etc/envoy/envoy.yaml --log-level info
  exit $?
else
  echo "no envoy binary and no Docker engine: trying func-e v1.3.0 (downloads Envoy $ENVOY_VERSION)"
  if (cd tools && timeout 120 go tool func-e --envoy-version "$ENVOY_VERSION" which) >/dev/null 2>&1; then
    envoy_cmd=(go -C "$ROOT/tools" tool func-e --envoy-version "$ENVOY_VERSION" run)
  fi
fi

if [ ${#envoy_cmd[@]} -eq 0 ]; then
  cat <<MSG >&2

No Envoy could be had on this machine: ENVOY_BIN is unset, there is no 'envoy'
on PATH, no running Docker engine, and func-e could not download Envoy
$ENVOY_VERSION (it needs the internet).

Get one, then run 'make run' again, with any of:
  * ENVOY_BIN=/path/to/envoy make run        (an Envoy v1.39 binary)
  * docker pull envoyproxy/envoy:v$ENVOY_VERSION   (then make run uses Docker)
  * make docker                              (build/Dockerfile: Envoy + this library)

The library is built at $LIB_DIR/libinferencepool.so; 'make test' drives it
through Envoy's C ABI without Envoy. The simulators are stopping now.
MSG
  exit 1
fi

echo "Envoy on 127.0.0.1:10000, admin on 127.0.0.1:9901. Try:"; try_message
"${envoy_cmd[@]}" -c "$ROOT/envoy.yaml" --log-level info

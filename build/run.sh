#!/usr/bin/env bash
# make run: three simulated model servers on 127.0.0.1:8001-8003 (model
# sim-model and its LoRA adapter sim-lora), Envoy with libinferencepool.so on
# 127.0.0.1:10000 (bootstrap rendered from build/run.yaml), then a few
# requests through the OpenAI Go SDK (build/demo); Envoy keeps serving until
# Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIB_DIR=$ROOT/dist
RUN_DIR=$LIB_DIR/run
SIM=$ROOT/.bin/llm-d-inference-sim
MODEL=${MODEL:-sim-model}
LORA=${LORA:-sim-lora}
ENVOY_VERSION=${ENVOY_VERSION:-1.39.0}
BOOTSTRAP=$RUN_DIR/envoy.yaml
mkdir -p "$RUN_DIR"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

go build -o "$RUN_DIR/inferencepool-config" ./build/inferencepool-config
go build -o "$RUN_DIR/inferencepool-demo" ./build/demo
INFERENCEPOOL_CONFIG=$ROOT/build/run.yaml "$RUN_DIR/inferencepool-config" -out "$BOOTSTRAP"

echo "starting 3 simulated vLLM servers (llm-d-inference-sim) on 127.0.0.1:8001-8003, models $MODEL and $LORA (LoRA)"
POD_IP=127.0.0.1 "$SIM" --model "$MODEL" --force-dummy-tokenizer --port 8001 --data-parallel-size 3 \
  --lora-modules "{\"name\":\"$LORA\",\"path\":\"/adapters/$LORA\"}" --max-loras 2 \
  --max-num-seqs 8 --max-waiting-queue-length 200 --time-to-first-token 50ms --inter-token-latency 10ms \
  --enable-kvcache --kv-cache-size 1024 --time-factor-under-load 1 >"$RUN_DIR/sim.log" 2>&1 &
pids+=($!)
for port in 8001 8002 8003; do
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
done

export GODEBUG=cgocheck=0
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$LIB_DIR

envoy_cmd=()
if [ -n "${ENVOY_BIN:-}" ]; then
  envoy_cmd=("$ENVOY_BIN" -c "$BOOTSTRAP")
elif command -v envoy >/dev/null 2>&1; then
  envoy_cmd=(envoy -c "$BOOTSTRAP")
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "no envoy binary: running envoyproxy/envoy:v$ENVOY_VERSION in Docker (host network)"
  envoy_cmd=(docker run --rm --network host -e GODEBUG=cgocheck=0 \
    -e ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/dm -v "$LIB_DIR:/dm:ro" -v "$BOOTSTRAP:/etc/envoy/envoy.yaml:ro" \
    "envoyproxy/envoy:v$ENVOY_VERSION" -c /etc/envoy/envoy.yaml)
else
  echo "no envoy binary and no Docker engine: trying func-e v1.3.0 (downloads Envoy $ENVOY_VERSION)"
  if (cd tools && timeout 120 go tool func-e --envoy-version "$ENVOY_VERSION" which) >/dev/null 2>&1; then
    envoy_cmd=(go -C "$ROOT/tools" tool func-e --envoy-version "$ENVOY_VERSION" run -c "$BOOTSTRAP")
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
  * docker compose -f build/compose.yaml up --build   (the image and simulators in containers)

Meanwhile, the same demo runs through the library without Envoy: abihost
(test/abihost) loads libinferencepool.so and plays Envoy's side of the C ABI,
and the OpenAI SDK's requests reach it over a small HTTP front
(go test ./build/demo -run TestDemoThroughTheLibrary -v):
MSG
  cleanup
  ABIHOST_SKIP_BUILD=1 ABIHOST_LIB=$LIB_DIR/libinferencepool.so \
    go test -count=1 -run TestDemoThroughTheLibrary -v ./build/demo 2>&1 | sed -n '/requests through/,/docker compose/p' | sed 's/^        //'
  echo "(Without Envoy there is no admin on :9901: the run above checked abihost's own stats instead.)"
  echo
  echo "Envoy did not run: make run stops here." >&2
  exit 1
fi

echo "Envoy on 127.0.0.1:10000, admin on 127.0.0.1:9901 (bootstrap: $BOOTSTRAP)"
"${envoy_cmd[@]}" --log-level warn &
envoy_pid=$!
pids+=($envoy_pid)
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  kill -0 "$envoy_pid" 2>/dev/null || { echo "Envoy exited: see its log above" >&2; exit 1; }
  sleep 0.2
done

"$RUN_DIR/inferencepool-demo" -url http://127.0.0.1:10000/v1 -admin http://127.0.0.1:9901 -models "$MODEL,$LORA" || true

cat <<MSG

Envoy keeps serving on 127.0.0.1:10000 (Ctrl-C stops it and the simulators). Try:

  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$MODEL","messages":[{"role":"user","content":"Hello!"}]}'

MSG
wait "$envoy_pid"

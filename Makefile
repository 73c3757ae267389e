# envoy-inferencepool: two commands for everything.
#   make run   build the library, start three simulated model servers and Envoy,
#              then send a few requests through the OpenAI Go SDK (build/demo)
#   make test  everything that runs without Envoy (plus the real-Envoy e2e
#              suite when ENVOY_BIN points at an Envoy v1.39 binary)
#   make test-e2e  the real-Envoy suite alone, with Envoy from ENVOY_BIN,
#              func-e or Docker

GO        ?= go
LIB       := dist/libinferencepool.so
# The test build: the same library plus the test-only "debug" injection
# (module/debug_inject.go), which drives the panic barrier and the scheduler
# through the real library. Never shipped: make build leaves it out, and the
# production library refuses a config with a "debug" object.
DEBUG_TAG := inferencepool_debug
TEST_LIB  := dist/test/libinferencepool.so
ABIHOST   := test/abihost/abihost
SIM       := .bin/llm-d-inference-sim
GO_SRC    := $(shell find abi internal module picker transform \( -name '*.go' -not -name '*_test.go' \) -o -name '*.h' -o -name '*.s' 2>/dev/null) go.mod go.sum
HOST_SRC  := $(wildcard test/abihost/*.c test/abihost/*.h)

.PHONY: build run test test-lib tidy-check test-e2e bench bench-routing sim docker clean

build: $(LIB) $(ABIHOST)

$(LIB): $(GO_SRC)
	@mkdir -p dist
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -o $@ ./module

test-lib: $(TEST_LIB)

$(TEST_LIB): $(GO_SRC)
	@mkdir -p dist/test
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -tags $(DEBUG_TAG) -o $@ ./module

# abihost plays Envoy's side of the C ABI in tests (test/abihost/PROTOCOL.md).
$(ABIHOST): $(HOST_SRC) test/abihost/build.sh test/abihost/callbacks.def
	test/abihost/build.sh

sim: $(SIM)

# The simulator lives in its own module (tools/) so its Kubernetes
# dependencies stay out of ours; built once into a git-ignored folder.
$(SIM): tools/go.mod tools/go.sum
	@mkdir -p .bin
	cd tools && $(GO) build -o ../$(SIM) github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim

run: build sim
	./build/run.sh

# go.mod and go.sum must be tidy (go mod tidy would change nothing).
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

# Tests drive the test library (the harness's default, dist/test/); the
# production library's refusal of "debug" is tested through abihost
# (test/production_test.go), and module/ and the envoy.yaml validator run
# without the tag too, as they ship.
test: tidy-check build $(TEST_LIB) sim
	$(GO) vet ./...
	$(GO) vet -tags $(DEBUG_TAG) ./...
	ABIHOST_SKIP_BUILD=1 $(GO) test -tags $(DEBUG_TAG) -count=1 ./...
	# The picker suite again with ai_router picking (its endpointPicker).
	INFERENCEPOOL_TEST_ONE_FILTER=1 ABIHOST_SKIP_BUILD=1 $(GO) test -tags $(DEBUG_TAG) -count=1 -run 'TestPicker' ./test
	$(GO) test -count=1 ./module/... ./test/envoyconfig/...
	$(GO) test -count=1 -race -tags $(DEBUG_TAG) ./picker/... ./transform/... ./module/filterconfig/... ./abi/... ./internal/...
	@if [ -n "$$ENVOY_BIN" ]; then $(MAKE) test-e2e; else echo "e2e: ENVOY_BIN not set, real-Envoy suite not run (see README.md)"; fi

# The real-Envoy suite (README.md, "The real-Envoy suite"): Envoy v1.39 from
# ENVOY_BIN, else func-e on PATH (ENVOY_VERSION, default 1.39.0), else Docker
# (envoyproxy/envoy:v$ENVOY_VERSION, host network, dist/ mounted); with none
# it fails naming the three (test/e2e/envoyrun).
test-e2e: build sim
	ENVOY_E2E=1 $(GO) test -count=1 -timeout 30m -v ./test/e2e/...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./picker/ ./transform/ ./module/ ./test/ | tee dist/bench.txt

# Routing quality on 8 simulator ranks: our picker (1 and 4 independent
# instances, learned and rendezvous prefix modes) against round robin and
# random; round robin and the default mode on three seeds (-rounds). About 7 minutes.
# Writes the table and plots to picker/testdata/bench/benchrouting-DATE-HHMM* (a second run the same day does not overwrite the first).
bench-routing: $(SIM)
	$(GO) run ./picker/cmd/benchrouting -sim $(SIM) -out picker/testdata/bench/benchrouting-$(shell date -u +%F-%H%M)

docker:
	docker build -f build/Dockerfile -t envoy-inferencepool:dev .

clean:
	rm -rf dist $(ABIHOST)

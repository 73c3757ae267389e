# envoy-inferencepool: two commands for everything.
#   make run   build the library, start three simulated model servers and Envoy
#   make test  everything that runs without Envoy (plus the real-Envoy e2e
#              suite when ENVOY_BIN points at an Envoy v1.39 binary)

GO        ?= go
LIB       := dist/libinferencepool.so
ABIHOST   := test/abihost/abihost
SIM       := .bin/llm-d-inference-sim
GO_SRC    := $(shell find abi module picker transform -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum
HOST_SRC  := $(wildcard test/abihost/*.c test/abihost/*.h)

.PHONY: build run test test-e2e bench bench-routing sim docker clean

build: $(LIB) $(ABIHOST)

$(LIB): $(GO_SRC)
	@mkdir -p dist
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -o $@ ./module

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

test: build sim
	$(GO) vet ./...
	ABIHOST_SKIP_BUILD=1 $(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./picker/... ./transform/... ./module/filterconfig/... ./abi/... ./internal/...
	@if [ -n "$$ENVOY_BIN" ]; then $(MAKE) test-e2e; else echo "e2e: ENVOY_BIN not set, real-Envoy suite not run (see README.md)"; fi

test-e2e: build sim
	ENVOY_E2E=1 $(GO) test -count=1 -v ./test/e2e/...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./picker/ ./transform/ ./test/ | tee dist/bench.txt

# Routing quality on 8 simulator ranks: our picker (1 and 4 independent
# instances, learned and rendezvous prefix modes) against round robin and
# random. About 3.5 minutes.
bench-routing: $(SIM)
	$(GO) run ./picker/cmd/benchrouting -sim $(SIM)

docker:
	docker build -f build/Dockerfile -t envoy-inferencepool:dev .

clean:
	rm -rf dist $(ABIHOST)

# llm-d-inference-sim v0.10.2, the simulated vLLM server of make run and the
# tests, built from tools/go.mod (the pinned version) for build/compose.yaml.
FROM golang:1.26-bookworm AS build
WORKDIR /src/tools
COPY tools/go.mod tools/go.sum ./
RUN go build -trimpath -o /out/llm-d-inference-sim github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim

FROM debian:bookworm-slim
COPY --from=build /out/llm-d-inference-sim /usr/local/bin/llm-d-inference-sim
ENTRYPOINT ["/usr/local/bin/llm-d-inference-sim"]

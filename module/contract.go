package main

// Names other components already use (DESIGN.md section 4); they do not change.
const (
	headerDestination = "x-gateway-destination-endpoint"
	headerModel       = "x-ai-eg-model"
	headerObjective   = "x-gateway-inference-objective"

	metadataLB          = "envoy.lb"
	metadataServedKey   = "x-gateway-destination-endpoint-served"
	metadataSubsetNS    = "envoy.lb.subset_hint"
	metadataSubsetKey   = "x-gateway-destination-endpoint-subset"
	metadataDestination = headerDestination
)

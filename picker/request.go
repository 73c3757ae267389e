package picker

// Request is what Pick needs to know about one request. The caller (the
// module) fills it from transform.ParseRequest's reading of the body: done by
// ai_router when that filter ran, else by endpoint_picker itself, so the
// prompt bytes, and thus the prefix hashes, are the same either way.
type Request struct {
	// Model is the requested model; for LoRA, the adapter name.
	Model string
	// Prompt is the prompt's bytes for prefix affinity: the raw JSON of the
	// chat "messages" array, or of the "prompt" (completions) or "input"
	// (embeddings, responses); a JSON string without its quotes.
	// Pick reads it and keeps no reference after it returns.
	Prompt []byte
	// Objective is the x-gateway-inference-objective header, mapped to a
	// priority by the pool's "priorities".
	Objective string
	// Subset is the subset hint (x-gateway-destination-endpoint-subset): only
	// these ip:port may be picked. It applies when HasSubset is set; an empty
	// or non-matching hint gives StatusNoCapacity.
	Subset    []string
	HasSubset bool
}

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// workload draws requests: most share one of a few popular system prompts
// (Zipf popularity, so one prefix is hot enough to need several servers),
// the rest are unique; some ask for a LoRA adapter.
type workload struct {
	rng        *rand.Rand
	zipf       *rand.Zipf
	systems    []string
	baseModel  string
	adapters   []string
	sharedFrac float64 // requests that start with a popular system prompt
	loraFrac   float64 // requests that name an adapter
	longFrac   float64 // requests with a long answer
}

var vocabulary = strings.Fields(`the of and to in is was that for on are with as his they be at one have this
from or had by word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look more day
could go come did number sound no most people my over know water than call first who may down side been now find any
new work part take get place made live where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ turn cause much mean before move right
boy old too same tell does set three want air well also play small end put home read hand port large spell add even
land here must big high such follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father head stand own page should country found answer school grow study still
learn plant cover food sun four between state keep eye never last let thought city tree cross farm hard start might story`)

func newWorkload(seed uint64, nSystems, systemWords int, baseModel string, adapters []string) *workload {
	w := &workload{
		rng:        rand.New(rand.NewPCG(seed, seed^0x5eed)),
		baseModel:  baseModel,
		adapters:   adapters,
		sharedFrac: 0.8,
		loraFrac:   0.4,
		longFrac:   0.2,
	}
	w.zipf = rand.NewZipf(w.rng, 1.1, 1, uint64(nSystems-1))
	for i := range nSystems {
		w.systems = append(w.systems, fmt.Sprintf("You are assistant number %d. ", i)+w.words(systemWords))
	}
	return w
}

func (w *workload) words(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[w.rng.IntN(len(vocabulary))])
	}
	return b.String()
}

// next returns a request body. Not safe for concurrent use: the load
// generator draws from one goroutine.
func (w *workload) next() []byte {
	system := w.words(80) // a one-off conversation
	if w.rng.Float64() < w.sharedFrac {
		system = w.systems[w.zipf.Uint64()]
	}
	model := w.baseModel
	if w.rng.Float64() < w.loraFrac {
		model = w.adapters[w.rng.IntN(len(w.adapters))]
	}
	// Answer lengths are heavy-tailed: mostly short, some long.
	tokens := 10 + w.rng.IntN(31)
	if w.rng.Float64() < w.longFrac {
		tokens = 100 + w.rng.IntN(101)
	}
	body, _ := json.Marshal(map[string]any{
		"model":          model,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
		"ignore_eos":     true,
		"max_tokens":     tokens,
		"messages": []map[string]string{
			{"role": "system", "content": system},
			{"role": "user", "content": w.words(40 + w.rng.IntN(80))},
		},
	})
	return body
}

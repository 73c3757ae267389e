package metrics

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// The fast path reads the lines of the wanted families itself, without
// expfmt, maps or allocations. It accepts only the canonical text format
// every server writes (`name{label="value",...} value`, `# TYPE name
// gauge|counter|untyped`, single spaces, no escapes, no timestamps, ASCII
// label values) and gives up on anything else, leaving the exposition to
// the expfmt path: whatever it accepts, expfmt parses to the same numbers
// (FuzzParseFastMatchesExpfmt checks the two agree on every input).

// family accumulates one wanted family's series as expfmt would collect them.
type family struct {
	name   string
	typed  bool // a TYPE line was read or a sample fixed the type
	n      int  // series
	sum    float64
	bad    float64 // first NaN, infinite or negative value, when hasBad
	hasBad bool
}

// loraSeries is one lora_requests_info series: label values point into the body.
type loraSeries struct {
	v                       float64
	running, waiting, maxLo []byte
}

// role indexes into fastState.fams, -1 when the role's name is empty.
type roles struct{ waiting, running, kv, kvFallback, lora, cacheConfig int }

type fastState struct {
	names  Names // the Names the state below was built for
	usable bool  // every wanted name is one the fast path can match
	fams   []family
	roles  roles
	filter lineFilter

	lora      []loraSeries
	blockSize []byte
	numBlocks []byte

	seen [][]byte // a line's label names, reused (vLLM's cache_config_info has 20)

	memos [][]labelMemo // per family, per series index: the label block last parsed there

	loraKey  []byte // the winning series' label values behind lastLoRA
	lastLoRA *LoRA  // reused while the newest LoRA state does not change
	keyBuf   []byte
}

// prepare resets the per-parse state, rebuilding the family table only when
// the names change (a Parser serves one target in the collector).
func (f *fastState) prepare(names *Names) {
	if f.fams == nil || f.names != *names {
		f.names = *names
		f.fams = f.fams[:0]
		f.usable = true
		add := func(name string) int {
			if name == "" {
				return -1
			}
			if !fastName(name) {
				f.usable = false
			}
			for i := range f.fams {
				if f.fams[i].name == name {
					return i
				}
			}
			f.fams = append(f.fams, family{name: name})
			return len(f.fams) - 1
		}
		f.roles = roles{
			waiting: add(names.Waiting), running: add(names.Running),
			kv: add(names.KVUsage), kvFallback: add(names.KVUsageFallback),
			lora: add(names.LoRAInfo), cacheConfig: add(names.CacheConfig),
		}
		f.lastLoRA, f.loraKey = nil, f.loraKey[:0]
		f.filter.reset(names.list(nil))
		f.memos = make([][]labelMemo, len(f.fams))
	}
	for i := range f.fams {
		f.fams[i] = family{name: f.fams[i].name}
	}
	f.lora = f.lora[:0]
	f.blockSize, f.numBlocks = nil, nil
}

// fastName reports whether name is an unquoted legacy metric name that
// expfmt files under itself: not a _sum, _count or _bucket, which expfmt may
// attach to a summary or histogram family of the base name.
func fastName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_bucket")
}

// parseFast returns ok=false when the exposition needs the expfmt path.
func (p *Parser) parseFast(body []byte, names *Names) (s Sample, ok bool, err error) {
	f := &p.fast
	f.prepare(names)
	if !f.usable {
		return Sample{}, false, nil
	}
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		if !f.filter.keep(line) {
			continue
		}
		if !f.line(line) {
			return Sample{}, false, nil
		}
	}
	s, err = f.sample(names)
	return s, true, err
}

var typePrefix = []byte("# TYPE ")

// line reads one kept line; false means it is not in the canonical form.
func (f *fastState) line(line []byte) bool {
	if line[0] == '#' {
		if !bytes.HasPrefix(line, typePrefix) {
			return false
		}
		rest := line[len(typePrefix):]
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return false
		}
		fi := f.lookup(rest[:i])
		if fi < 0 || f.fams[fi].typed {
			return false // unknown here, or a second TYPE / TYPE after samples: expfmt's error
		}
		switch string(rest[i+1:]) {
		case "gauge", "counter", "untyped":
		default:
			return false // histogram, summary, other spellings: expfmt decides
		}
		f.fams[fi].typed = true
		return true
	}
	fi := -1
	for i := range f.fams {
		n := f.fams[i].name
		if len(line) > len(n) && (line[len(n)] == '{' || line[len(n)] == ' ') && string(line[:len(n)]) == n {
			fi = i
			break
		}
	}
	if fi < 0 {
		return false // a blank-led, tab-separated or quoted line
	}
	fam := &f.fams[fi]
	rest := line[len(fam.name):]
	isLoRA, isCfg := fi == f.roles.lora, fi == f.roles.cacheConfig && fam.n == 0
	var ls loraSeries
	var block, num []byte
	if m := f.memo(fi, fam.n); rest[0] == '{' && m != nil && len(m.block) > 0 && len(rest) >= len(m.block) && bytes.Equal(rest[:len(m.block)], m.block) {
		// The same label block as this series had last time: it parses the
		// same, so only the values of interest are taken, at the same places.
		b := rest[:len(m.block)]
		ls.running, ls.waiting, ls.maxLo = m.running.in(b), m.waiting.in(b), m.maxLo.in(b)
		block, num = m.block16.in(b), m.numBlocks.in(b)
		rest = rest[len(b):]
		if len(rest) == 0 || rest[0] != ' ' {
			return false
		}
	} else if rest[0] == '{' {
		var at labelMemo    // where the values of interest are, for the memo
		seen := f.seen[:0]  // label names so far: a duplicate is expfmt's error
		var seenBits uint64 // labelBit of each: most names need no comparison
		i := 1
		for {
			if i >= len(rest) {
				return false
			}
			if rest[i] == '}' {
				i++
				break
			}
			start := i
			for i < len(rest) && labelChar(rest[i], i == start) {
				i++
			}
			lname := rest[start:i]
			if len(lname) == 0 || string(lname) == "__name__" || len(seen) == maxFastLabels {
				return false
			}
			if bit := labelBit(lname); seenBits&bit == 0 {
				seenBits |= bit
			} else {
				for _, prev := range seen {
					if bytes.Equal(prev, lname) {
						return false
					}
				}
			}
			seen = append(seen, lname)
			f.seen = seen
			if i+1 >= len(rest) || rest[i] != '=' || rest[i+1] != '"' {
				return false
			}
			i += 2
			vstart := i
			for i < len(rest) && rest[i] != '"' {
				if c := rest[i]; c == '\\' || c >= 0x80 {
					return false
				}
				i++
			}
			if i >= len(rest) {
				return false
			}
			val := rest[vstart:i]
			span := valueSpan{int32(vstart), int32(i)}
			i++ // closing quote
			if isLoRA {
				switch string(lname) {
				case "running_lora_adapters":
					ls.running, at.running = val, span
				case "waiting_lora_adapters":
					ls.waiting, at.waiting = val, span
				case "max_lora":
					ls.maxLo, at.maxLo = val, span
				}
			}
			if isCfg {
				if string(lname) == f.names.BlockSizeLabel {
					block, at.block16 = val, span
				}
				if string(lname) == f.names.NumBlocksLabel {
					num, at.numBlocks = val, span
				}
			}
			if i < len(rest) && rest[i] == ',' {
				i++
				continue
			}
			if i < len(rest) && rest[i] == '}' {
				i++
				break
			}
			return false
		}
		f.remember(fi, fam.n, rest[:i], at)
		rest = rest[i:]
		if len(rest) == 0 || rest[0] != ' ' {
			return false
		}
	}
	tok := rest[1:]
	if len(tok) == 0 {
		return false
	}
	for _, c := range tok {
		if c == ' ' || c == '\t' || c == 'p' || c == 'P' || c == '_' {
			return false // timestamps, blanks and what expfmt refuses as a float
		}
	}
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil {
		return false
	}
	fam.typed = true // expfmt fixes an untyped family's type at its first sample
	fam.n++
	if !fam.hasBad && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
		fam.bad, fam.hasBad = v, true
	}
	fam.sum += v
	if isLoRA {
		ls.v = v
		f.lora = append(f.lora, ls)
	}
	if isCfg {
		f.blockSize, f.numBlocks = block, num
	}
	return true
}

// LoRAMemo is what a Parser remembers of one source's LoRA state, to return
// the same *LoRA while it does not change. A Parser shared by several
// sources is given each one's memo around its Parse (SwapLoRA).
type LoRAMemo struct {
	key  []byte
	last *LoRA
}

// SwapLoRA exchanges the parser's LoRA memory with m: swapping a source's
// memo in before its Parse and out after keeps that source's LoRA state
// apart from the others'. No allocation.
func (p *Parser) SwapLoRA(m *LoRAMemo) {
	f := &p.fast
	f.loraKey, m.key = m.key, f.loraKey
	f.lastLoRA, m.last = m.last, f.lastLoRA
}

// labelMemo is a series' label block (from '{' to '}') as last parsed,
// with where its values of interest were. The block parse reads only those
// bytes, so an equal block has the same verdict and values: servers write
// the same labels scrape after scrape, and vLLM's cache_config_info block
// alone is 500 bytes and 20 labels.
type labelMemo struct {
	block                   []byte
	running, waiting, maxLo valueSpan
	block16, numBlocks      valueSpan // block size, GPU blocks
}

// valueSpan is a label value's place in its block; a zero span: none.
type valueSpan struct{ start, end int32 }

func (v valueSpan) in(b []byte) []byte {
	if v.end == 0 {
		return nil
	}
	return b[v.start:v.end]
}

// maxMemoSeries: series of a family past this many are not remembered.
const maxMemoSeries = 8

func (f *fastState) memo(fi, n int) *labelMemo {
	if n < len(f.memos[fi]) {
		return &f.memos[fi][n]
	}
	return nil
}

func (f *fastState) remember(fi, n int, block []byte, at labelMemo) {
	if n >= maxMemoSeries {
		return
	}
	for len(f.memos[fi]) <= n {
		f.memos[fi] = append(f.memos[fi], labelMemo{})
	}
	m := &f.memos[fi][n]
	at.block = append(m.block[:0], block...)
	*m = at
}

// labelBit is one of 64 bits picked by a label name's length and first and
// last bytes: equal names have the same bit.
func labelBit(name []byte) uint64 {
	return 1 << ((uint(len(name))*7 + uint(name[0])*3 + uint(name[len(name)-1])) & 63)
}

// maxFastLabels: a series with more labels is left to expfmt.
const maxFastLabels = 64

func labelChar(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func (f *fastState) lookup(name []byte) int {
	for i := range f.fams {
		if f.fams[i].name == string(name) {
			return i
		}
	}
	return -1
}

// sample turns the families into a Sample with Parse's checks and errors.
func (f *fastState) sample(names *Names) (s Sample, err error) {
	if s.Waiting, err = f.required(f.roles.waiting, names.Waiting, sum); err != nil {
		return Sample{}, err
	}
	if s.Running, err = f.required(f.roles.running, names.Running, sum); err != nil {
		return Sample{}, err
	}
	kv, kvName := f.roles.kv, names.KVUsage
	if f.count(kv) == 0 && names.KVUsageFallback != "" && f.count(f.roles.kvFallback) > 0 {
		kv, kvName = f.roles.kvFallback, names.KVUsageFallback
	}
	if s.KVUsage, err = f.required(kv, kvName, mean); err != nil {
		return Sample{}, err
	}
	if s.KVUsage > 1 {
		return Sample{}, fmt.Errorf("%s is %g, outside [0,1]", kvName, s.KVUsage)
	}
	if f.count(f.roles.lora) > 0 {
		s.LoRA = f.newestLoRA()
	}
	if f.count(f.roles.cacheConfig) > 0 {
		s.BlockSize, _ = strconv.Atoi(unsafe.String(unsafe.SliceData(f.blockSize), len(f.blockSize)))
		s.NumGPUBlocks, _ = strconv.Atoi(unsafe.String(unsafe.SliceData(f.numBlocks), len(f.numBlocks)))
	}
	return s, nil
}

func (f *fastState) count(i int) int {
	if i < 0 {
		return 0
	}
	return f.fams[i].n
}

// required mirrors the expfmt path's required for a numeric family.
func (f *fastState) required(i int, name string, agg aggregate) (float64, error) {
	if name == "" {
		return 0, nil
	}
	if f.count(i) == 0 {
		return 0, fmt.Errorf("%w %s", ErrMissing, name)
	}
	fam := &f.fams[i]
	if fam.hasBad {
		return 0, fmt.Errorf("%s has value %g", name, fam.bad)
	}
	total := fam.sum
	if math.IsInf(total, 0) {
		return 0, fmt.Errorf("%s overflows", name)
	}
	if agg == mean {
		total /= float64(fam.n)
	}
	return total, nil
}

// newestLoRA is the expfmt path's newestLoRA over the recorded series. The
// result is reused while the winning series' labels stay the same, so a
// steady LoRA state costs no allocation per scrape.
func (f *fastState) newestLoRA() *LoRA {
	newest := math.Inf(-1)
	for _, ls := range f.lora {
		if !math.IsNaN(ls.v) && ls.v > newest {
			newest = ls.v
		}
	}
	if math.IsInf(newest, -1) {
		return nil
	}
	key := f.keyBuf[:0]
	for _, ls := range f.lora {
		if ls.v != newest {
			continue
		}
		key = append(key, ls.running...)
		key = append(key, 0)
		key = append(key, ls.waiting...)
		key = append(key, 0)
		key = append(key, ls.maxLo...)
		key = append(key, 1)
	}
	f.keyBuf = key
	if f.lastLoRA != nil && bytes.Equal(key, f.loraKey) {
		return f.lastLoRA
	}
	var running, waiting []string
	maxLoRA := 0
	for _, ls := range f.lora {
		if ls.v != newest {
			continue
		}
		running = appendList(running, string(ls.running))
		waiting = appendList(waiting, string(ls.waiting))
		if n, err := strconv.Atoi(string(ls.maxLo)); err == nil && n > maxLoRA {
			maxLoRA = n
		}
	}
	f.lastLoRA = NewLoRA(running, waiting, maxLoRA)
	f.loraKey = append(f.loraKey[:0], key...)
	return f.lastLoRA
}

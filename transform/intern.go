package transform

import (
	"strings"
	"sync"
	"sync/atomic"
)

// maxInterned bounds the model names modelNames keeps: past it (clients
// sending made-up names), a name is copied per request as before, and the
// table stops growing.
const maxInterned = 256

// modelNames interns the model names requests ask for that the config does
// not list, so that the same name is not copied out of every request body.
// Lookups are lock-free (a map replaced whole on insert); inserts are rare.
type modelNames struct {
	m  atomic.Pointer[map[string]string]
	mu sync.Mutex
}

// intern returns name as a string that does not alias its argument's
// memory (name may point into a request body). A nil table copies.
func (t *modelNames) intern(name string) string {
	if t == nil {
		return strings.Clone(name)
	}
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[name]; ok {
			return v
		}
		if len(*m) >= maxInterned {
			return strings.Clone(name)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if v, ok := (*old)[name]; ok {
			return v
		}
		if len(*old) >= maxInterned {
			return strings.Clone(name)
		}
	}
	v := strings.Clone(name)
	m := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, x := range *old {
			m[k] = x
		}
	}
	m[v] = v
	t.m.Store(&m)
	return v
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

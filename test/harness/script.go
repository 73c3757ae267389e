package harness

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// StartScripted starts abihost on test/abihost/testmodule, a module built
// with the same Go SDK whose hooks do what each filter's script says (return
// chosen statuses, set headers and metadata, continue later...) and log what
// they observe at info level, forwarded as log events. Tests of abihost
// itself and of the harness use it.
func StartScripted(t testing.TB, opts Options) *Host {
	t.Helper()
	lib, err := BuildModule(t, "./test/abihost/testmodule", "dist/libabihosttest.so")
	if err != nil {
		t.Fatal(err)
	}
	opts.Lib = lib
	opts.LogLevel = "info"
	opts.LogEvents = true
	return Start(t, opts)
}

// Script is a chain entry of the scripted module: name is its filter_name,
// script its filter_config (test/abihost/testmodule/main.go reads it).
func Script(name string, script map[string]any) Filter {
	b, err := json.Marshal(script)
	if err != nil {
		panic(err)
	}
	return Filter{Name: name, Config: b}
}

// LogsWithPrefix returns the stream's module log lines that start with
// prefix, trimmed.
func (s *Stream) LogsWithPrefix(prefix string) []string {
	var out []string
	for _, l := range s.Logs() {
		if strings.HasPrefix(l.Msg, prefix) {
			out = append(out, strings.TrimSpace(l.Msg))
		}
	}
	return out
}

// Kinds summarises events as "kind[:data][+eos]", body data inline.
func Kinds(ev []Event) []string {
	var out []string
	for _, e := range ev {
		k := string(e.Kind)
		switch e.Kind {
		case UpData, DownData, UAData:
			k += ":" + string(e.Data)
		}
		if e.Attempt > 0 {
			k += "#" + strconv.Itoa(e.Attempt)
		}
		if e.EOS {
			k += "+eos"
		}
		out = append(out, k)
	}
	return out
}

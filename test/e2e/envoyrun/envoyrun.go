// Package envoyrun chooses how the real-Envoy suite (test/e2e, make
// test-e2e) starts Envoy v1.39, and starts it: ENVOY_BIN, else func-e on
// PATH, else the envoyproxy/envoy image in Docker with the library mounted
// and host networking. Where none can be had, Choose says so, naming the
// three. No Envoy is faked: this only builds the command.
package envoyrun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// DefaultVersion is the Envoy release func-e and Docker run (ENVOY_VERSION
// overrides it): the pinned SDK's ABI needs v1.39.
const DefaultVersion = "1.39.0"

// Kind is where Envoy comes from.
type Kind string

const (
	Binary Kind = "ENVOY_BIN"
	FuncE  Kind = "func-e"
	Docker Kind = "docker"
)

// Host is what Choose looks at: the environment, PATH, and whether a
// Docker engine answers. Tests replace each.
type Host struct {
	Getenv   func(string) string
	LookPath func(string) (string, error)
	// DockerUp reports whether the docker client at path reaches an engine.
	DockerUp func(path string) bool
}

// System is the real host.
func System(getenv func(string) string) Host {
	return Host{Getenv: getenv, LookPath: exec.LookPath, DockerUp: dockerUp}
}

func dockerUp(path string) bool {
	cmd := exec.Command(path, "info", "--format", "{{.ServerVersion}}")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return false
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// Choice is how Envoy will be started.
type Choice struct {
	Kind    Kind
	Path    string // the envoy, func-e or docker executable
	Version string // func-e and Docker: the Envoy release
}

func (c Choice) String() string {
	switch c.Kind {
	case Binary:
		return "Envoy from ENVOY_BIN=" + c.Path
	case FuncE:
		return fmt.Sprintf("func-e run (%s), Envoy %s", c.Path, c.Version)
	default:
		return fmt.Sprintf("docker run %s (host network, library mounted)", c.Image())
	}
}

// Image is the Docker image of Version.
func (c Choice) Image() string { return "envoyproxy/envoy:v" + c.Version }

var versionRE = regexp.MustCompile(`^1\.(39|[4-9][0-9])\.[0-9]+$`)

// ErrNoEnvoy is returned (wrapped, with the three ways) when no Envoy can be
// had.
var ErrNoEnvoy = errors.New("no Envoy v1.39 to run the real-Envoy suite")

// Choose picks ENVOY_BIN, else func-e on PATH, else a running Docker engine.
func Choose(h Host) (Choice, error) {
	version := h.Getenv("ENVOY_VERSION")
	if version == "" {
		version = DefaultVersion
	}
	if bin := h.Getenv("ENVOY_BIN"); bin != "" {
		path, err := h.LookPath(bin)
		if err != nil {
			return Choice{}, fmt.Errorf("ENVOY_BIN=%s: %w", bin, err)
		}
		return Choice{Kind: Binary, Path: path}, nil
	}
	if !versionRE.MatchString(version) {
		return Choice{}, fmt.Errorf("ENVOY_VERSION=%q: want a release such as %s (v1.39 or newer: the SDK's ABI)", version, DefaultVersion)
	}
	if path, err := h.LookPath("func-e"); err == nil {
		return Choice{Kind: FuncE, Path: path, Version: version}, nil
	}
	var why []string
	why = append(why, "ENVOY_BIN is not set", "func-e is not on PATH")
	if path, err := h.LookPath("docker"); err == nil {
		if h.DockerUp(path) {
			return Choice{Kind: Docker, Path: path, Version: version}, nil
		}
		why = append(why, "docker is on PATH but no Docker engine answers (docker info)")
	} else {
		why = append(why, "docker is not on PATH")
	}
	return Choice{}, fmt.Errorf(`%w: %s. Use one of:
  * ENVOY_BIN=/path/to/envoy make test-e2e   (an Envoy v1.39 binary)
  * func-e on PATH: it runs Envoy $ENVOY_VERSION (default %s), downloading it once
    (go -C tools build -o /usr/local/bin/func-e github.com/tetratelabs/func-e/cmd/func-e)
  * a running Docker engine: docker run %s, the library mounted, host network`,
		ErrNoEnvoy, strings.Join(why, ", "), DefaultVersion, Choice{Version: version}.Image())
}

// Run is what Envoy needs besides its arguments.
type Run struct {
	LibDir string   // the folder of libinferencepool.so
	Mounts []string // Docker: folders Envoy reads or writes (config, keys, logs), mounted at the same path
	Name   string   // Docker: the container's name (unique per Envoy)
}

// Command returns the command that runs Envoy with args, and how to stop
// it (the command's process alone may not be Envoy: func-e's child,
// Docker's container).
func (c Choice) Command(r Run, args ...string) (*exec.Cmd, func()) {
	env := append(os.Environ(), "GODEBUG=cgocheck=0", "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+r.LibDir)
	var cmd *exec.Cmd
	switch c.Kind {
	case Binary:
		cmd = exec.Command(c.Path, args...)
	case FuncE:
		cmd = exec.Command(c.Path, append([]string{"run"}, args...)...)
		env = append(env, "ENVOY_VERSION="+c.Version)
	case Docker:
		cmd = exec.Command(c.Path, c.DockerArgs(r, args...)...)
		return cmd, func() {
			_ = exec.Command(c.Path, "rm", "-f", r.Name).Run()
			_ = cmd.Process.Kill()
		}
	}
	cmd.Env = env
	// Its own process group, so that stopping it stops what func-e started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

// DockerArgs are docker's arguments: the image's entrypoint runs Envoy
// with args (they start with '-'); ENVOY_UID=0 keeps it root so it can read
// the test's 0600 files and write its logs in the test's folders.
func (c Choice) DockerArgs(r Run, args ...string) []string {
	out := []string{"run", "--rm", "--name", r.Name, "--network", "host",
		"-e", "GODEBUG=cgocheck=0", "-e", "ENVOY_DYNAMIC_MODULES_SEARCH_PATH=" + r.LibDir, "-e", "ENVOY_UID=0",
		"-v", r.LibDir + ":" + r.LibDir + ":ro"}
	for _, m := range r.Mounts {
		out = append(out, "-v", m+":"+m)
	}
	out = append(out, c.Image())
	return append(out, args...)
}

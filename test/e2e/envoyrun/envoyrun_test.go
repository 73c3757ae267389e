package envoyrun

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeHost has the executables in path (name to path), a Docker engine
// answering when dockerUp, and env.
func fakeHost(env map[string]string, path map[string]string, dockerUp bool) Host {
	return Host{
		Getenv: func(k string) string { return env[k] },
		LookPath: func(name string) (string, error) {
			if p, ok := path[name]; ok {
				return p, nil
			}
			if strings.HasPrefix(name, "/") {
				return "", errors.New("no such file")
			}
			return "", exec.ErrNotFound
		},
		DockerUp: func(string) bool { return dockerUp },
	}
}

func TestChoose(t *testing.T) {
	all := map[string]string{"/opt/envoy": "/opt/envoy", "func-e": "/usr/bin/func-e", "docker": "/usr/bin/docker"}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		path     map[string]string
		dockerUp bool
		want     Choice
		wantErr  []string
	}{
		{name: "ENVOY_BIN first", env: map[string]string{"ENVOY_BIN": "/opt/envoy"}, path: all, dockerUp: true,
			want: Choice{Kind: Binary, Path: "/opt/envoy"}},
		{name: "ENVOY_BIN that is not there is an error, not a fallback", env: map[string]string{"ENVOY_BIN": "/nope/envoy"}, path: all, dockerUp: true,
			wantErr: []string{"ENVOY_BIN=/nope/envoy"}},
		{name: "func-e before Docker", path: all, dockerUp: true,
			want: Choice{Kind: FuncE, Path: "/usr/bin/func-e", Version: DefaultVersion}},
		{name: "func-e with ENVOY_VERSION", env: map[string]string{"ENVOY_VERSION": "1.39.2"}, path: all,
			want: Choice{Kind: FuncE, Path: "/usr/bin/func-e", Version: "1.39.2"}},
		{name: "Docker when its engine answers", path: map[string]string{"docker": "/usr/bin/docker"}, dockerUp: true,
			want: Choice{Kind: Docker, Path: "/usr/bin/docker", Version: DefaultVersion}},
		{name: "a docker client without an engine is not enough", path: map[string]string{"docker": "/usr/bin/docker"},
			wantErr: []string{"no Docker engine answers", "ENVOY_BIN=", "func-e", "docker run envoyproxy/envoy:v1.39.0"}},
		{name: "nothing at all names the three ways",
			wantErr: []string{"ENVOY_BIN is not set", "func-e is not on PATH", "docker is not on PATH", "ENVOY_BIN=/path/to/envoy", "func-e on PATH", "docker run envoyproxy/envoy:v1.39.0"}},
		{name: "an older Envoy is refused", env: map[string]string{"ENVOY_VERSION": "1.37.0"}, path: all,
			wantErr: []string{`ENVOY_VERSION="1.37.0"`}},
		{name: "a version that is no version is refused", env: map[string]string{"ENVOY_VERSION": "1.39.0; rm -rf /"}, path: all,
			wantErr: []string{"ENVOY_VERSION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(fakeHost(tc.env, tc.path, tc.dockerUp))
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					require.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := Choose(fakeHost(nil, nil, false))
	require.ErrorIs(t, err, ErrNoEnvoy)
}

func TestCommand(t *testing.T) {
	r := Run{LibDir: "/repo/dist", Mounts: []string{"/tmp/TestX1"}, Name: "e2e-1"}
	t.Run("binary", func(t *testing.T) {
		cmd, _ := Choice{Kind: Binary, Path: "/opt/envoy"}.Command(r, "-c", "/tmp/TestX1/envoy.yaml")
		require.Equal(t, []string{"/opt/envoy", "-c", "/tmp/TestX1/envoy.yaml"}, cmd.Args)
		require.Contains(t, cmd.Env, "GODEBUG=cgocheck=0")
		require.Contains(t, cmd.Env, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/repo/dist")
		require.True(t, cmd.SysProcAttr.Setpgid)
	})
	t.Run("func-e", func(t *testing.T) {
		cmd, _ := Choice{Kind: FuncE, Path: "/usr/bin/func-e", Version: "1.39.0"}.Command(r, "-c", "x.yaml")
		require.Equal(t, []string{"/usr/bin/func-e", "run", "-c", "x.yaml"}, cmd.Args)
		require.Contains(t, cmd.Env, "ENVOY_VERSION=1.39.0")
		require.Contains(t, cmd.Env, "GODEBUG=cgocheck=0")
	})
	t.Run("docker", func(t *testing.T) {
		cmd, _ := Choice{Kind: Docker, Path: "/usr/bin/docker", Version: "1.39.0"}.Command(r, "-c", "/tmp/TestX1/envoy.yaml")
		require.Equal(t, []string{"/usr/bin/docker", "run", "--rm", "--name", "e2e-1", "--network", "host",
			"-e", "GODEBUG=cgocheck=0", "-e", "ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/repo/dist", "-e", "ENVOY_UID=0",
			"-v", "/repo/dist:/repo/dist:ro", "-v", "/tmp/TestX1:/tmp/TestX1",
			"envoyproxy/envoy:v1.39.0", "-c", "/tmp/TestX1/envoy.yaml"}, cmd.Args)
	})
}

package harness

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// measuredInstructions reads the bench thread's dump of the measured
// exchanges, per exchange, and removes it (or keeps it where asked).
func TestMeasuredInstructions(t *testing.T) {
	dump := "version: 1\ncmd: abihost --bench 2000\npart: 1\ndesc: Trigger: Client Request: measured\nevents: Ir\nsummary: 172400000\ntotals: 172400000\n"
	write := func(t *testing.T, dir, name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	t.Run("the bench thread's dump", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "callgrind.41.1-01", dump)
		write(t, dir, "callgrind.41.2-01", "totals: 999999999\n") // another thread: not counted
		write(t, dir, "callgrind.41", "totals: 999999999\n")      // the whole run
		got, err := measuredInstructions(dir, 2000)
		require.NoError(t, err)
		require.Equal(t, 86200.0, got)
		_, err = os.Stat(filepath.Join(dir, "callgrind.41.1-01"))
		require.True(t, os.IsNotExist(err), "removed: the next run in dir writes its own")
	})
	t.Run("kept where asked", func(t *testing.T) {
		dir, keep := t.TempDir(), t.TempDir()
		t.Setenv("ABIHOST_CALLGRIND_KEEP", keep)
		write(t, dir, "callgrind.42.1-01", dump)
		_, err := measuredInstructions(dir, 2000)
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(keep, "callgrind.42.1-01"))
		require.NoError(t, err)
	})
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"no dump", nil},
		{"two dumps", map[string]string{"callgrind.1.1-01": dump, "callgrind.2.1-01": dump}},
		{"no totals line", map[string]string{"callgrind.1.1-01": "summary: 5\n"}},
		{"a bad totals line", map[string]string{"callgrind.1.1-01": "totals: many\n"}},
		{"an empty totals line", map[string]string{"callgrind.1.1-01": "totals: \n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				write(t, dir, name, content)
			}
			_, err := measuredInstructions(dir, 2000)
			require.Error(t, err)
		})
	}
}

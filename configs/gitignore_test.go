package configs

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExampleDataDirIsIgnored: running the broker with the example configuration
// (`warren --config configs/warren.yaml`) creates its data dir beside the file; git must not
// offer the store's files, or its control socket, for committing.
func TestExampleDataDirIsIgnored(t *testing.T) {
	b, err := LoadBroker("warren.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(b.DataDir, "MANIFEST"), filepath.Join(b.DataDir, "000001.vlog"), b.ControlSocketPath()} {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("git", "check-ignore", "--no-index", "--", abs).CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil: // ignored
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			t.Errorf("%s (from configs/warren.yaml) is not ignored by git: add its directory to .gitignore", abs)
		default:
			t.Fatalf("git check-ignore %s (this test needs git and a checkout of the repository): %v\n%s", p, err, out)
		}
	}
}

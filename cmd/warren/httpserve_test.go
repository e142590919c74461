package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPPortInUse: an HTTP endpoint address another process holds stops the broker at start
// with an error naming it, before it creates its data dir; a bad address is refused by its
// flag.
func TestHTTPPortInUse(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct{ flag, other, what string }{
		{"--prometheus-listen", "--management-listen", "prometheus endpoint"},
		{"--management-listen", "--prometheus-listen", "management API"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			dir := filepath.Join(t.TempDir(), "data")
			err = run([]string{"--listen", freeAddr(t), tc.flag, held.Addr().String(), tc.other, "127.0.0.1:0", "--data-dir", dir}, devnull)
			if err == nil || !strings.Contains(err.Error(), tc.what+": listen on "+held.Addr().String()) {
				t.Fatalf("run = %v, want the %s listener's error", err, tc.what)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("data dir exists after the failed start (stat: %v)", err)
			}
			if err := run([]string{tc.flag, "nonsense"}, devnull); err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("run with a bad address = %v, want a %s error", err, tc.flag)
			}
		})
	}
}

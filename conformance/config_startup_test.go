package conformance

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startupCase is a broken pair of files and the error lines the broker and `warren config
// check` must print for them.
type startupCase struct {
	name   string
	config func(addr string) string // warren.yaml
	defs   string                   // defs.yaml
	check  string                   // the file to give `warren config check`
	want   []string                 // regular expressions, one per expected error line
}

func startupCases() []startupCase {
	goodDefs := dedent(`
		queues:
		  - {name: su.a}
	`)
	return []startupCase{
		{
			name: "unknown key in a listener",
			config: func(addr string) string {
				return fmt.Sprintf("listeners:\n  - protocol: amqp\n    adress: %s\ndata-dir: data\ndefinitions: [defs.yaml]\n", addr)
			},
			defs:  goodDefs,
			check: "warren.yaml",
			want:  []string{`warren\.yaml:3:5: listeners\[0\]: unknown key "adress"`},
		},
		{
			name:   "bad duration",
			config: func(addr string) string { return simpleConfig(addr) + "heartbeat: soon\n" },
			defs:   goodDefs,
			check:  "warren.yaml",
			want:   []string{`warren\.yaml:6:\d+: heartbeat: `},
		},
		{
			name:   "unknown key in a queue",
			config: simpleConfig,
			defs: dedent(`
				exchanges:
				  - {name: orders, type: topic}
				queues:
				  - name: orders.work
				  - name: orders.audit
				    duarble: true
			`),
			check: "defs.yaml",
			want:  []string{regexp.QuoteMeta(`defs.yaml:6:5: queues[1]: unknown key "duarble"; expected one of: name, vhost, durable, auto-delete, arguments`)},
		},
		{
			name:   "binding to an undefined queue",
			config: simpleConfig,
			defs: dedent(`
				exchanges:
				  - {name: orders, type: topic}
				queues:
				  - {name: orders.work}
				bindings:
				  - source: orders
				    destination: ordrs
				    destination-type: queue
				    routing-key: "order.*"
			`),
			check: "defs.yaml",
			want:  []string{`defs\.yaml:[67]:\d+: ` + regexp.QuoteMeta(`bindings[0]: binding destination queue "ordrs" in vhost "/" is not defined`)},
		},
		{
			name:   "two problems, both reported",
			config: simpleConfig,
			defs: dedent(`
				queues:
				  - name: orders.work
				    duarble: true
				bindings:
				  - {source: amq.topic, destination: ordrs, destination-type: queue, routing-key: "order.*"}
			`),
			check: "defs.yaml",
			want: []string{
				regexp.QuoteMeta(`defs.yaml:3:5: queues[0]: unknown key "duarble"`),
				`defs\.yaml:5:\d+: ` + regexp.QuoteMeta(`bindings[0]: binding destination queue "ordrs" in vhost "/" is not defined`),
			},
		},
		{
			name:   "permission for an undefined user",
			config: simpleConfig,
			defs: dedent(`
				users:
				  - {name: app, password-hash: "` + passwordHash("secret") + `"}
				permissions:
				  - {user: ap, vhost: /, configure: "*", write: "*", read: "*"}
			`),
			check: "defs.yaml",
			want:  []string{`defs\.yaml:4:\d+: permissions\[0\]`},
		},
		{
			name:   "YAML syntax error",
			config: simpleConfig,
			defs:   "queues:\n  - {name: orders.work\n",
			check:  "defs.yaml",
			want:   []string{`defs\.yaml:\d+`},
		},
	}
}

// testConfigStartupErrors starts the broker with broken files: it must exit non-zero with the
// file:line:col error on stderr, and `warren config check` on the broken file must exit 1 with
// the same line. The good version of the same files passes the check.
func testConfigStartupErrors(t *testing.T, bin string) {
	for _, c := range startupCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			config := writeCfgFile(t, dir, "warren.yaml", c.config(addr))
			writeCfgFile(t, dir, "defs.yaml", c.defs)

			// A broken file is refused at once; a broker that starts anyway is killed.
			r := runWarrenWithin(t, 5*time.Second, bin, "", "", "--config", config, "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0")
			if r.code == 0 {
				t.Errorf("the broker exited 0 with a broken %s, want non-zero:\n%v", c.check, r)
			}
			for _, re := range c.want {
				wantLine(t, "the broker's stderr", r.stderr, re)
			}

			r = runWarren(t, bin, "", "", "config", "check", filepath.Join(dir, c.check))
			if r.code != 1 {
				t.Errorf("warren config check on a broken %s: exit status %d, want 1:\n%v", c.check, r.code, r)
			}
			for _, re := range c.want {
				wantLine(t, "warren config check's stderr", r.stderr, re)
			}
		})
	}

	t.Run("good files", func(t *testing.T) {
		dir := t.TempDir()
		config := writeCfgFile(t, dir, "warren.yaml", simpleConfig(freeAddr(t)))
		defs := writeCfgFile(t, dir, "defs.yaml", permsDefs())
		r := runWarren(t, bin, "", "", "config", "check", config, defs)
		if r.code != 0 {
			t.Fatalf("warren config check on good files failed:\n%v", r)
		}
		if !strings.Contains(r.stdout, "ok") {
			t.Errorf("warren config check on good files printed no \"ok\":\n%v", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			t.Errorf("warren config check created the data dir")
		}
	})
}

// testConfigExampleFiles checks the example files under configs/ with `warren config check`, one
// by one and all together. The deployment manifests (Docker Compose's compose.yaml, the
// Kubernetes objects under configs/kubernetes/) are not Warren's files: configs' own tests
// check them (deploy_test.go).
func testConfigExampleFiles(t *testing.T, bin string) {
	var files []string
	err := filepath.WalkDir(filepath.Join("..", "configs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "kubernetes" {
			return filepath.SkipDir
		}
		if d.Name() == "compose.yaml" {
			return nil
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("configs/: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no example files (*.yaml, *.yml, *.json) under configs/")
	}
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = abs
		r := runWarren(t, bin, "", "", "config", "check", abs)
		if r.code != 0 || !strings.Contains(r.stdout, "ok") {
			t.Errorf("warren config check %s: want exit status 0 and \"ok\":\n%v", f, r)
		}
	}
	r := runWarren(t, bin, "", "", append([]string{"config", "check"}, files...)...)
	if r.code != 0 {
		t.Errorf("warren config check on all the examples at once:\n%v", r)
	}
}

// testConfigFlags checks where things go: relative paths in the file are relative to the
// file's directory (not the working directory), and flags override the file.
func testConfigFlags(t *testing.T, bin string) {
	dir := t.TempDir()
	fileAddr := freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(fileAddr))
	writeCfgFile(t, dir, "defs.yaml", "queues:\n  - {name: fl.a, durable: true}\n")

	b := startCfgBrokerIn(t, bin, dir, fileAddr)
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("data-dir: data in %s: %v", filepath.Join(dir, "warren.yaml"), err)
	}
	if entries, _ := os.ReadDir(b.cmd.Dir); len(entries) > 0 {
		t.Errorf("the broker wrote %d entries into its working directory; relative paths are relative to the config file", len(entries))
	}
	if _, ok := passiveQueue(t, b.dial("guest", "guest", "/"), "fl.a"); !ok {
		t.Errorf("queue fl.a from defs.yaml (next to warren.yaml) does not exist")
	}
	b.terminate()

	flagAddr, flagData := freeAddr(t), filepath.Join(t.TempDir(), "flag-data")
	b = startCfgBrokerIn(t, bin, dir, flagAddr, "--listen", flagAddr, "--data-dir", flagData)
	if err := probeAMQP(fileAddr); err == nil {
		t.Errorf("the broker listens on %s from the file as well as on %s from --listen", fileAddr, flagAddr)
	}
	if _, err := os.Stat(flagData); err != nil {
		t.Errorf("--data-dir %s: %v", flagData, err)
	}
	if _, ok := passiveQueue(t, b.dial("guest", "guest", "/"), "fl.a"); !ok {
		t.Errorf("queue fl.a from defs.yaml does not exist with --listen and --data-dir")
	}
}

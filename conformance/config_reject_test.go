package conformance

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The rejected-reload test's good definitions: rj.x routes "k" to rj.a.
var rejectDefsGood = dedent(`
	exchanges:
	  - {name: rj.x, type: direct}
	queues:
	  - {name: rj.a}
	bindings:
	  - {source: rj.x, destination: rj.a, destination-type: queue, routing-key: k}
`)

// rejectCase is a broken file and the error line its reload must report.
type rejectCase struct {
	name string
	file string // defs.yaml or warren.yaml
	text func(b *cfgBroker) string
	want string // regular expression for the error line
}

func rejectCases() []rejectCase {
	return []rejectCase{
		{
			name: "unknown key",
			file: "defs.yaml",
			text: func(*cfgBroker) string {
				return dedent(`
					exchanges:
					  - {name: rj.x, type: direct}
					queues:
					  - name: rj.a
					  - name: rj.new
					    duarble: true
					bindings:
					  - {source: rj.x, destination: rj.a, destination-type: queue, routing-key: k}
					  - {source: rj.x, destination: rj.new, destination-type: queue, routing-key: k}
				`)
			},
			want: regexp.QuoteMeta(`defs.yaml:6:5: queues[1]: unknown key "duarble"; expected one of: name, vhost, durable, auto-delete, arguments`),
		},
		{
			name: "binding to an undefined queue",
			file: "defs.yaml",
			text: func(*cfgBroker) string {
				return dedent(`
					exchanges:
					  - {name: rj.x, type: direct}
					queues:
					  - {name: rj.a}
					  - {name: rj.new}
					bindings:
					  - source: rj.x
					    destination: ordrs
					    destination-type: queue
					    routing-key: k
					  - {source: rj.x, destination: rj.new, destination-type: queue, routing-key: k}
				`)
			},
			// The position is the binding's or its destination's.
			want: `defs\.yaml:[78]:\d+: ` + regexp.QuoteMeta(`bindings[0]: binding destination queue "ordrs" in vhost "/" is not defined`),
		},
		{
			name: "broker config",
			file: "warren.yaml",
			text: func(b *cfgBroker) string { return simpleConfig(b.addr) + "heartbeat: soon\n" },
			want: `warren\.yaml:6:\d+: heartbeat: `,
		},
	}
}

// testConfigRejectedReload breaks the definitions or the broker config in several ways and
// reloads, with `warren config reload` (which must exit non-zero and print the
// file:line:col error) and with SIGHUP (the broker must log the error and keep running). Each
// broken file also adds a queue rj.new bound to rj.x; after every rejection the live topology
// is unchanged: rj.new does not exist, rj.x still routes to rj.a only, and the export is what
// it was. Finally a good change is accepted, so the rejections were not just reloads failing.
func testConfigRejectedReload(t *testing.T, bin string) {
	b := startCfgBroker(t, bin, rejectDefsGood)
	goodConfig := simpleConfig(b.addr)
	before, _ := b.export()
	conn := b.dial("guest", "guest", "/")
	ch := channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}

	unchanged := func(when string) {
		t.Helper()
		if !b.alive() {
			t.Fatalf("%s: the broker exited (%s)", when, b.exitStatus())
		}
		if _, ok := passiveQueue(t, conn, "rj.new"); ok {
			t.Errorf("%s: queue rj.new exists", when)
		}
		confirmPublish(t, ch, "rj.x", "k", amqp.Publishing{Body: []byte(when)})
		if got := getBodies(t, ch, "rj.a"); len(got) != 1 || got[0] != when {
			t.Errorf("%s: rj.a holds %q, want the one message just published to rj.x", when, got)
		}
		// warren.yaml may be the broken file: find the broker by its data dir.
		after, _ := b.exportWith("--data-dir", filepath.Join(b.dir, "data"))
		equalStrings(t, when+": exported bindings", after.bindings(), before.bindings())
		equalStrings(t, when+": exported queues", after.queues(), before.queues())
		equalStrings(t, when+": exported exchanges", after.exchanges(), before.exchanges())
	}
	restore := func() {
		writeCfgFile(t, b.dir, "warren.yaml", goodConfig)
		b.writeDefs(rejectDefsGood)
	}

	for _, c := range rejectCases() {
		when := c.name + ", warren config reload"
		writeCfgFile(t, b.dir, c.file, c.text(b))
		r := b.reload()
		if r.code == 0 {
			t.Errorf("%s: exit status 0 with a broken %s, want non-zero:\n%v", when, c.file, r)
		}
		wantLine(t, when+": stderr", r.stderr, c.want)
		unchanged(when)
		restore()

		when = c.name + ", SIGHUP"
		writeCfgFile(t, b.dir, c.file, c.text(b))
		mark := b.log.mark()
		b.signal(syscall.SIGHUP)
		rx := regexp.MustCompile(c.want)
		if _, ok := b.log.waitFor(mark, 10*time.Second, rx.MatchString); !ok {
			t.Errorf("%s: the broker logged no line matching %s within 10s", when, c.want)
		}
		unchanged(when)
		restore()
	}

	// A good change goes through.
	b.writeDefs(strings.Replace(rejectDefsGood, "  - {name: rj.a}\n", "  - {name: rj.a}\n  - {name: rj.new}\n", 1) +
		"  - {source: rj.x, destination: rj.new, destination-type: queue, routing-key: k}\n")
	b.mustReload()
	confirmPublish(t, ch, "rj.x", "k", amqp.Publishing{Body: []byte("accepted")})
	for _, q := range []string{"rj.a", "rj.new"} {
		equalStrings(t, q+" after the accepted reload", getBodies(t, ch, q), []string{"accepted"})
	}
}

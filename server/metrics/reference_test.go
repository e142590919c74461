package metrics_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// refFamily is one metric family of RabbitMQ's endpoint: its type and label names.
type refFamily struct {
	typ    string
	labels []string // sorted
	known  bool     // the capture had a series to take the labels from
}

// loadReference reads testdata/rabbitmq-3.10.8-families.txt.
func loadReference(t *testing.T) map[string]refFamily {
	t.Helper()
	f, err := os.Open("testdata/rabbitmq-3.10.8-families.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref := map[string]refFamily{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("reference line %q", line)
		}
		rf := refFamily{typ: fields[1], known: fields[2] != "?"}
		if rf.known && fields[2] != "none" {
			rf.labels = strings.Split(fields[2], ",")
			slices.Sort(rf.labels)
		}
		ref[fields[0]] = rf
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestFamiliesMatchRabbitMQ checks every family Warren serves on /metrics/per-object and on
// /metrics/detailed (every family asked for) against RabbitMQ 3.10.8's: the same name, type
// and label names, so queries and dashboards written for RabbitMQ find them. The exceptions
// are documented: RabbitMQ 4's message size histogram, Warren's own warren_* families, and
// build_info's product labels
// (RabbitMQ adds them when a product name is configured).
func TestFamiliesMatchRabbitMQ(t *testing.T) {
	ref := loadReference(t)
	w := startWorld(t)
	runWorkload(t, w)
	check := func(path string) {
		_, body := get(t, w.base+path)
		fams := parse(t, body)
		if len(fams) < 3 { // the identity and at least one family asked for
			t.Fatalf("%s: only %d families", path, len(fams))
		}
		for name, f := range fams {
			if name == "rabbitmq_message_size_bytes" || strings.HasPrefix(name, "warren_") {
				continue // RabbitMQ 4's; Warren's own (documented as such)
			}
			rf, ok := ref[name]
			if !ok {
				t.Errorf("%s: %s is not a RabbitMQ 3.10 metric", path, name)
				continue
			}
			if typ := strings.ToLower(f.GetType().String()); typ != rf.typ {
				t.Errorf("%s: %s is a %s, RabbitMQ's a %s", path, name, typ, rf.typ)
			}
			for _, m := range f.GetMetric() {
				labels := labelNames(m)
				if name == "rabbitmq_build_info" {
					labels = slices.DeleteFunc(labels, func(l string) bool { return l == "product_name" || l == "product_version" })
				}
				if rf.known && !slices.Equal(labels, rf.labels) {
					t.Errorf("%s: %s labelled %v, RabbitMQ's %v", path, name, labels, rf.labels)
					break
				}
			}
		}
	}
	check("/metrics/per-object")
	check("/metrics/detailed?family=connection_churn_metrics&family=node_coarse_metrics&family=node_metrics&family=queue_coarse_metrics&family=queue_consumer_count&family=channel_metrics&family=connection_metrics&family=vhost_status&family=exchange_bindings&family=exchange_names&family=ra_metrics")
	check("/metrics/detailed?family=queue_metrics")
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName())
	}
	slices.Sort(out)
	return out
}

package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterSettings: the cluster keys load with the file's paths resolved; a membership
// without this node, with a name twice, with peers beyond loopback but no secret, or a peer
// that is not name@host:port is refused with its position and a reason.
func TestClusterSettings(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "warren.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`node-name: n2
cluster-listen: 127.0.0.1:25673
cluster-peers: [n1@127.0.0.1:25672, n2@127.0.0.1:25673, n3@localhost:25674]
`)
	b, err := LoadBroker(p)
	if err != nil {
		t.Fatal(err)
	}
	c := b.Cluster
	if !c.Enabled() || c.NodeName != "n2" || c.Listen != "127.0.0.1:25673" || len(c.Peers) != 3 || c.SecretFile != "" {
		t.Fatalf("cluster = %+v", c)
	}
	if self, ok := c.Self(); !ok || self.Addr != "127.0.0.1:25673" {
		t.Fatalf("Self = %+v, %v", self, ok)
	}

	write(`node-name: n1
cluster-peers: [n1@10.0.0.1:25672, n2@10.0.0.2:25672]
cluster-secret-file: secret
`)
	if b, err = LoadBroker(p); err != nil || b.Cluster.SecretFile != filepath.Join(dir, "secret") {
		t.Fatalf("with a secret file: %+v, %v", b.Cluster, err)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"node-name: n1\ncluster-peers: [n1@10.0.0.1:25672, n2@10.0.0.2:25672]\n", "warren.yaml:2:16: cluster-peers: cluster-secret-file is required when a peer is not on a loopback address"},
		{"node-name: n9\ncluster-peers: [n1@127.0.0.1:1, n2@127.0.0.1:2]\n", `cluster-peers must include this node: no peer is named "n9" (node-name); to join a running cluster instead, set cluster-advertise to the address the other nodes dial`},
		{"node-name: n9\ncluster-advertise: 127.0.0.1:2\ncluster-peers: [n1@127.0.0.1:1, n2@127.0.0.1:2]\n", "cluster-advertise 127.0.0.1:2 is another peer's address"},
		{"node-name: n9\ncluster-advertise: 10.0.0.9:25672\ncluster-peers: [n1@127.0.0.1:1]\n", "cluster-secret-file is required"},
		{"node-name: n1\ncluster-peers: [n1@127.0.0.1:1, n1@127.0.0.1:2]\n", `cluster-peers names "n1" twice`},
		{"node-name: n1\ncluster-peers: [n1@127.0.0.1:1, n2@127.0.0.1:1]\n", "cluster-peers has the address 127.0.0.1:1 twice"},
		{"node-name: n1\ncluster-peers: [n1@127.0.0.1:1, 127.0.0.1:2]\n", `warren.yaml:2:33: cluster-peers[1]: peer "127.0.0.1:2" is not name@host:port`},
		{"cluster-peers: [n1@127.0.0.1:1]\n", "cluster-peers needs node-name"},
		{"cluster-listen: :25672\n", "cluster-listen, cluster-advertise and cluster-secret-file need cluster-peers"},
	} {
		write(bad.yaml)
		_, err := LoadBroker(p)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.yaml, err, bad.want)
		}
	}

	write("node-name: n4\ncluster-advertise: 127.0.0.1:25676\ncluster-peers: [n1@127.0.0.1:25673]\n")
	if b, err = LoadBroker(p); err != nil || !b.Cluster.Joining() {
		t.Fatalf("a node outside cluster-peers with cluster-advertise: %+v, %v (want a joining node)", b.Cluster, err)
	}

	peers, err := ParsePeers("n1@127.0.0.1:25672, n2@[::1]:25673")
	if err != nil || len(peers) != 2 || peers[1].Addr != "[::1]:25673" {
		t.Fatalf("ParsePeers = %+v, %v", peers, err)
	}
	if _, err := ParsePeers("n1@127.0.0.1"); err == nil {
		t.Error("a peer without a port was accepted")
	}

	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Cluster{SecretFile: secret}).ReadSecret(); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("a 5-byte secret: %v", err)
	}
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (Cluster{SecretFile: secret}).ReadSecret(); err != nil || string(s) != "0123456789abcdef0123" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}
}

package configs

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
)

// Cluster is the node's cluster membership: node-name, cluster-listen, cluster-advertise,
// cluster-peers, cluster-secret-file and cluster-tls. With no peers the broker runs alone.
type Cluster struct {
	// NodeName is this node's name in the cluster: one of Peers' names, or, for a node that
	// joins a running cluster (Joining), a name none of them has.
	NodeName string
	// Listen is the address other nodes connect to (default :25672); Advertise the address
	// they dial, when it differs (default: this node's address in Peers).
	Listen, Advertise string
	// Peers is the initial membership, this node included, the same on every node. A node
	// restarted on existing data rejoins its cluster whatever this says.
	Peers []Peer
	// SecretFile holds the shared secret every node proves it knows; required unless every
	// peer is on a loopback address.
	SecretFile string
	// TLS, when set, wraps the cluster connections (the keys of a listener's tls section; the
	// certificates are checked against ca-file both ways).
	TLS *TLS
}

// Peer is one node of the initial membership: "name@host:port".
type Peer struct {
	Name, Addr string
}

func (p Peer) String() string { return p.Name + "@" + p.Addr }

// Enabled says whether the node runs in a cluster.
func (c Cluster) Enabled() bool { return len(c.Peers) > 0 }

// Self is this node's entry in Peers.
func (c Cluster) Self() (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == c.NodeName {
			return p, true
		}
	}
	return Peer{}, false
}

// Joining says the node is not in the initial membership: it joins the running cluster the
// peers form once a member adds it (`warren ctl cluster join`), and never bootstraps one of
// its own. Its address is cluster-advertise.
func (c Cluster) Joining() bool {
	_, ok := c.Self()
	return c.Enabled() && !ok
}

// DefaultClusterListen is cluster-listen's default, RabbitMQ's inter-node port.
const DefaultClusterListen = ":25672"

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParsePeers reads a comma-separated list of name@host:port (--cluster-peers).
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := ParsePeer(item)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePeer reads one name@host:port.
func ParsePeer(s string) (Peer, error) {
	name, addr, ok := strings.Cut(s, "@")
	if !ok {
		return Peer{}, fmt.Errorf("peer %q is not name@host:port", s)
	}
	if !nodeNameRE.MatchString(name) {
		return Peer{}, fmt.Errorf("peer %q: node name %q must be 1 to 64 letters, digits, '.', '_' or '-'", s, name)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return Peer{}, fmt.Errorf("peer %q: address %q is not host:port", s, addr)
	}
	if err := checkAddress(addr); err != nil {
		return Peer{}, fmt.Errorf("peer %q: %w", s, err)
	}
	return Peer{Name: name, Addr: addr}, nil
}

// Check reports what is wrong with the membership as a whole: this node among the peers,
// no name or address twice, a secret for peers beyond loopback.
func (c Cluster) Check() error {
	if !c.Enabled() {
		if c.NodeName != "" && c.SecretFile == "" && c.Listen == "" {
			return nil // a name alone is harmless: the node runs alone
		}
		if c.Listen != "" || c.SecretFile != "" || c.Advertise != "" {
			return fmt.Errorf("cluster-listen, cluster-advertise and cluster-secret-file need cluster-peers")
		}
		return nil
	}
	if c.NodeName == "" {
		return fmt.Errorf("cluster-peers needs node-name: the name of this node among them")
	}
	if !nodeNameRE.MatchString(c.NodeName) {
		return fmt.Errorf("node-name %q must be 1 to 64 letters, digits, '.', '_' or '-'", c.NodeName)
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	loopbackOnly := true
	for _, p := range c.Peers {
		if names[p.Name] {
			return fmt.Errorf("cluster-peers names %q twice", p.Name)
		}
		if addrs[p.Addr] {
			return fmt.Errorf("cluster-peers has the address %s twice", p.Addr)
		}
		names[p.Name], addrs[p.Addr] = true, true
		host, _, _ := net.SplitHostPort(p.Addr)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			loopbackOnly = false
		}
	}
	if _, ok := c.Self(); !ok {
		if c.Advertise == "" {
			return fmt.Errorf("cluster-peers must include this node: no peer is named %q (node-name); "+
				"to join a running cluster instead, set cluster-advertise to the address the other nodes dial", c.NodeName)
		}
		if addrs[c.Advertise] {
			return fmt.Errorf("cluster-advertise %s is another peer's address in cluster-peers", c.Advertise)
		}
		if host, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("cluster-advertise %q: %w", c.Advertise, err)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			loopbackOnly = false
		}
	}
	if c.SecretFile == "" && !loopbackOnly {
		return fmt.Errorf("cluster-secret-file is required when a peer is not on a loopback address: every node must prove it belongs to the cluster")
	}
	return nil
}

// ReadSecret reads the cluster secret: the file's contents without surrounding whitespace,
// at least 16 bytes. Nil when there is no secret file.
func (c Cluster) ReadSecret() ([]byte, error) {
	if c.SecretFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("cluster-secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return nil, fmt.Errorf("cluster-secret-file %s: the secret is %d bytes; use at least 16 (e.g. openssl rand -hex 32)", c.SecretFile, len(s))
	}
	return []byte(s), nil
}

// cluster reads the cluster keys of a broker configuration.
func (d *decoder) cluster(f fields, c *Cluster, dir string) {
	if n, ok := f.get("node-name"); ok {
		if s, ok := d.str(n, "node-name"); ok {
			c.NodeName = s
		}
	}
	for _, k := range []struct {
		key string
		dst *string
	}{{"cluster-listen", &c.Listen}, {"cluster-advertise", &c.Advertise}} {
		if n, ok := f.get(k.key); ok {
			if s, ok := d.str(n, k.key); ok {
				if err := checkAddress(s); err != nil {
					d.errorf(n, k.key, "%s %v", k.key, err)
				} else {
					*k.dst = s
				}
			}
		}
	}
	if n, ok := f.get("cluster-peers"); ok {
		if items, ok := d.list(n, "cluster-peers"); ok {
			for i, item := range items {
				s, ok := d.str(item, index("cluster-peers", i))
				if !ok {
					continue
				}
				p, err := ParsePeer(s)
				if err != nil {
					d.errorf(item, index("cluster-peers", i), "%v", err)
					continue
				}
				c.Peers = append(c.Peers, p)
			}
		}
	}
	if n, ok := f.get("cluster-secret-file"); ok {
		if s, ok := d.path(n, "cluster-secret-file", dir); ok {
			c.SecretFile = s
		}
	}
	if n, ok := f.get("cluster-tls"); ok {
		c.TLS = d.tls(n, "cluster-tls", dir)
	}
	if err := c.Check(); err != nil {
		node := f.node
		for _, k := range []string{"cluster-peers", "node-name"} {
			if n, ok := f.get(k); ok {
				node = n
				break
			}
		}
		d.errorf(node, "cluster-peers", "%v", err)
	}
}

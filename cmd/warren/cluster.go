package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/store"
)

// clusterFlagSet is the cluster's command-line flags (the YAML keys of the same names).
type clusterFlagSet struct {
	name, listen, advertise, peers, secretFile *string
}

func clusterFlags(fs *flag.FlagSet, def configs.Cluster) clusterFlagSet {
	return clusterFlagSet{
		name:       fs.String("node-name", def.NodeName, "this node's name in the cluster (one of --cluster-peers)"),
		listen:     fs.String("cluster-listen", configs.DefaultClusterListen, "address the other nodes connect to (with --cluster-peers)"),
		advertise:  fs.String("cluster-advertise", "", "address the other nodes dial, when not this node's --cluster-peers address"),
		peers:      fs.String("cluster-peers", "", "the initial membership, this node included: name@host:port,... (the same on every node)"),
		secretFile: fs.String("cluster-secret-file", "", "file holding the secret every node proves it knows (required unless every peer is on loopback)"),
	}
}

// apply sets the flags given over c and checks the membership.
func (f clusterFlagSet) apply(fs *flag.FlagSet, c *configs.Cluster) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "node-name":
			c.NodeName = *f.name
		case "cluster-listen":
			c.Listen = *f.listen
		case "cluster-advertise":
			c.Advertise = *f.advertise
		case "cluster-secret-file":
			c.SecretFile = *f.secretFile
		case "cluster-peers":
			peers, perr := configs.ParsePeers(*f.peers)
			if perr != nil {
				err = fmt.Errorf("--cluster-peers: %w", perr)
			}
			c.Peers = peers
		}
	})
	if err != nil {
		return err
	}
	if err := c.Check(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// startCluster joins the cluster b names, with app as the model its metadata group drives;
// nil without one.
func startCluster(b *configs.Broker, st *store.Store, app cluster.Applier, log zerolog.Logger) (*cluster.Node, error) {
	c := b.Cluster
	if !c.Enabled() {
		return nil, nil
	}
	secret, err := c.ReadSecret()
	if err != nil {
		return nil, err
	}
	cfg := cluster.Config{Cluster: c, Secret: secret, DataDir: b.DataDir, Store: st, Logger: log, Applier: app}
	if c.TLS != nil {
		if cfg.ServerTLS, cfg.ClientTLS, err = clusterTLS(c.TLS, b.File); err != nil {
			return nil, err
		}
	}
	return cluster.Start(cfg)
}

// clusterTLS is both sides of cluster-tls: every node presents its certificate and checks the
// other's against ca-file.
func clusterTLS(t *configs.TLS, file string) (server, client *tls.Config, err error) {
	if t.CAFile == "" {
		return nil, nil, errors.New("cluster-tls needs ca-file: each node checks the other's certificate against it")
	}
	withVerify := *t
	withVerify.VerifyPeer, withVerify.FailIfNoPeerCert = true, true
	server, err = withVerify.ServerConfig(configs.Pos{File: file}, "cluster-tls")
	if err != nil {
		return nil, nil, err
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster-tls: ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client = &tls.Config{Certificates: server.Certificates, RootCAs: pool, MinVersion: server.MinVersion}
	return server, client, nil
}

// clusterView is node for the management API (nil without a cluster).
func clusterView(node *cluster.Node) func() (cluster.Status, bool) {
	if node == nil {
		return nil
	}
	return func() (cluster.Status, bool) { return node.Status(), true }
}

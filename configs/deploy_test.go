package configs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The deployment examples (configs/docker, configs/kubernetes) cannot be run here (no Docker
// or Kubernetes on the build machines); these tests decode them and check what would make a
// cluster fail to form: every node's flags pass the broker's own cluster checks, the peers
// list is the same everywhere and names exactly the nodes that run, each at the address and
// port it listens on, and the files the flags name are the ones mounted.

// flagValues reads --name=value and --name value arguments.
func flagValues(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Fatalf("argument %q is not a flag", args[i])
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = v
			continue
		}
		if i+1 >= len(args) {
			t.Fatalf("flag --%s has no value", a)
		}
		out[a] = args[i+1]
		i++
	}
	return out
}

// clusterOf is the cluster settings the flags give, checked as the broker checks them.
func clusterOf(t *testing.T, who string, f map[string]string) Cluster {
	t.Helper()
	peers, err := ParsePeers(f["cluster-peers"])
	if err != nil {
		t.Fatalf("%s: --cluster-peers: %v", who, err)
	}
	c := Cluster{NodeName: f["node-name"], Listen: f["cluster-listen"], Peers: peers, SecretFile: f["cluster-secret-file"]}
	if err := c.Check(); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if c.SecretFile == "" {
		t.Errorf("%s: no --cluster-secret-file", who)
	}
	return c
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// loadConfigAndDefinitions loads a broker configuration as the broker does, and its
// definitions files.
func loadConfigAndDefinitions(t *testing.T, path string) *Definitions {
	t.Helper()
	b, err := LoadBroker(path)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := LoadDefinitions(b.Definitions...)
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

type composeFile struct {
	Services map[string]struct {
		Hostname string   `yaml:"hostname"`
		Command  []string `yaml:"command"`
		Volumes  []string `yaml:"volumes"`
		Ports    []string `yaml:"ports"`
		Secrets  []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"secrets"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// TestDockerComposeCluster: configs/docker/compose.yaml runs three nodes from the
// repository's Dockerfile that would form one cluster.
func TestDockerComposeCluster(t *testing.T) {
	data, err := os.ReadFile("docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("compose.yaml has %d services, want 3", len(f.Services))
	}
	var peers string
	hostPorts := map[string]string{}
	names := map[string]bool{}
	for name, s := range f.Services {
		if df := filepath.Join("docker", s.Build.Context, s.Build.Dockerfile); !fileExists(df) {
			t.Errorf("%s: builds from %s, which does not exist", name, df)
		}
		fl := flagValues(t, s.Command)
		c := clusterOf(t, name, fl)
		names[c.NodeName] = true
		if s.Hostname != name {
			t.Errorf("%s: hostname %q, want the service's name (the peers list dials it)", name, s.Hostname)
		}
		if peers == "" {
			peers = fl["cluster-peers"]
		} else if fl["cluster-peers"] != peers {
			t.Errorf("%s: --cluster-peers differs from another node's:\n%s\n%s", name, fl["cluster-peers"], peers)
		}
		self, _ := c.Self()
		if host, _, _ := net.SplitHostPort(self.Addr); host != name || port(t, self.Addr) != port(t, c.Listen) {
			t.Errorf("%s: its peer address %s is not this service at its --cluster-listen %s", name, self.Addr, c.Listen)
		}
		var secret bool
		for _, sec := range s.Secrets {
			if sec.Target == c.SecretFile && f.Secrets[sec.Source].File != "" {
				secret = true
			}
		}
		if !secret {
			t.Errorf("%s: --cluster-secret-file %s is not a mounted secret", name, c.SecretFile)
		}
		cfg := fl["config"]
		var mounted bool
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == cfg {
				mounted = true
				loadConfigAndDefinitions(t, filepath.Join("docker", parts[0]))
			}
		}
		if !mounted {
			t.Errorf("%s: --config %s is not mounted", name, cfg)
		}
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, ok := hostPorts[host]; ok {
				t.Errorf("host port %s published by %s and %s", host, name, other)
			}
			hostPorts[host] = name
		}
	}
	all, _ := ParsePeers(peers)
	if len(all) != len(f.Services) {
		t.Errorf("cluster-peers names %d nodes, compose.yaml runs %d", len(all), len(f.Services))
	}
	for _, p := range all {
		if !names[p.Name] {
			t.Errorf("peer %s is not a node of compose.yaml", p.Name)
		}
	}
}

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Service
		ClusterIP                string `yaml:"clusterIP"`
		PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Name string `yaml:"name"`
			Port int    `yaml:"port"`
		} `yaml:"ports"`
		// StatefulSet
		ServiceName string `yaml:"serviceName"`
		Replicas    int    `yaml:"replicas"`
		Template    struct {
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			FieldRef struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe struct {
		HTTPGet struct {
			Path        string `yaml:"path"`
			Port        string `yaml:"port"`
			HTTPHeaders []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"httpHeaders"`
		} `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

func (c *k8sContainer) port(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// mountOf is the volume mounted at the directory holding path ("" when none).
func (c *k8sContainer) mountOf(path string) string {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(path) == m.MountPath || path == m.MountPath {
			return m.Name
		}
	}
	return ""
}

// TestKubernetesStatefulSet: configs/kubernetes/warren.yaml runs a StatefulSet whose pods
// would form one cluster: node-name from the pod name, cluster-peers naming exactly the
// replicas through the headless Service, the secret and configuration mounted where the
// flags point, a volume per pod, and a readiness probe on a health check that the probe's
// user may call.
func TestKubernetesStatefulSet(t *testing.T) {
	data, err := os.ReadFile("kubernetes/warren.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("warren.yaml: %v", err)
		}
		if o.Kind != "" {
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	sts, ok := objs["StatefulSet/warren"]
	if !ok {
		t.Fatalf("no StatefulSet warren among %v", slices.Sorted(maps.Keys(objs)))
	}
	svc, ok := objs["Service/"+sts.Spec.ServiceName]
	if !ok || svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's service %q is not a headless Service publishing not-ready pods: %+v", sts.Spec.ServiceName, svc.Spec)
	}
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(sts.Spec.Template.Spec.Containers))
	}
	c := &sts.Spec.Template.Spec.Containers[0]
	fl := flagValues(t, c.Args)
	var podName bool
	for _, e := range c.Env {
		if "$("+e.Name+")" == fl["node-name"] && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			podName = true
		}
	}
	if !podName {
		t.Errorf("--node-name %q is not the pod's name", fl["node-name"])
	}
	clusterPort := c.port("cluster")
	var svcPort bool
	for _, p := range svc.Spec.Ports {
		svcPort = svcPort || p.Port == clusterPort
	}
	if clusterPort == 0 || !svcPort {
		t.Errorf("the cluster port %d is not both a container port and the headless Service's", clusterPort)
	}
	// Each pod checks the flags as it will see them.
	for i := range sts.Spec.Replicas {
		pod := fmt.Sprintf("%s-%d", sts.Metadata.Name, i)
		pf := maps.Clone(fl)
		pf["node-name"] = pod
		cl := clusterOf(t, pod, pf)
		if len(cl.Peers) != sts.Spec.Replicas {
			t.Fatalf("cluster-peers names %d nodes, the StatefulSet runs %d", len(cl.Peers), sts.Spec.Replicas)
		}
		self, _ := cl.Self()
		if want := fmt.Sprintf("%s.%s:%d", pod, sts.Spec.ServiceName, clusterPort); self.Addr != want || port(t, cl.Listen) != strconv.Itoa(clusterPort) {
			t.Errorf("%s: peer address %s, listens on %s; want %s", pod, self.Addr, cl.Listen, want)
		}
	}

	// The secret and the configuration are mounted where the flags point.
	secrets := map[string]string{} // volume -> Secret
	for _, v := range sts.Spec.Template.Spec.Volumes {
		secrets[v.Name] = v.Secret.SecretName
	}
	secretFile := fl["cluster-secret-file"]
	sec, ok := objs["Secret/"+secrets[c.mountOf(secretFile)]]
	if !ok {
		t.Fatalf("--cluster-secret-file %s is not in a mounted Secret", secretFile)
	}
	placeholder, ok := sec.StringData[filepath.Base(secretFile)]
	if !ok {
		t.Fatalf("Secret %s has no key %s", sec.Metadata.Name, filepath.Base(secretFile))
	}
	// Applied unedited, the nodes refuse the placeholder rather than run with a known secret.
	if _, err := (Cluster{SecretFile: writeTemp(t, "secret", placeholder)}).ReadSecret(); err == nil {
		t.Errorf("the placeholder secret %q would be accepted", placeholder)
	}
	cfgPath := fl["config"]
	cfgSecret, ok := objs["Secret/"+secrets[c.mountOf(cfgPath)]]
	if !ok {
		t.Fatalf("--config %s is not in a mounted Secret", cfgPath)
	}
	dir := t.TempDir()
	for k, v := range cfgSecret.StringData {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defs := loadConfigAndDefinitions(t, filepath.Join(dir, filepath.Base(cfgPath)))

	// A volume per pod at the image's data dir.
	if len(sts.Spec.VolumeClaimTemplates) != 1 || c.mountOf("/var/lib/warren") != sts.Spec.VolumeClaimTemplates[0].Metadata.Name {
		t.Errorf("the data dir /var/lib/warren is not the pod's PersistentVolumeClaim")
	}

	// Readiness: a health check on the management port, as a user that exists with that
	// password and may call it.
	probe := c.ReadinessProbe.HTTPGet
	if !strings.HasPrefix(probe.Path, "/api/health/checks/") || c.port(probe.Port) != 15672 {
		t.Errorf("readiness probe %s on port %q: want /api/health/checks/... on the management port", probe.Path, probe.Port)
	}
	var auth string
	for _, h := range probe.HTTPHeaders {
		if h.Name == "Authorization" {
			auth = h.Value
		}
	}
	cred, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	user, pass, _ := strings.Cut(string(cred), ":")
	if err != nil || user == "" {
		t.Fatalf("readiness probe Authorization %q", auth)
	}
	var found bool
	for _, u := range defs.Users {
		if u.Name == user {
			found = true
			if !u.CheckPassword(pass) {
				t.Errorf("the probe's password is not user %s's", user)
			}
			if !slices.ContainsFunc(u.Tags, func(tag string) bool { return tag == "monitoring" || tag == "administrator" }) {
				t.Errorf("the probe's user %s has tags %v: the health checks need monitoring", user, u.Tags)
			}
		}
	}
	if !found {
		t.Errorf("the probe's user %s is not defined", user)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

package configs

import (
	"os"
	"path/filepath"
	"testing"
)

// writeFiles writes name → content into a temporary directory and returns the paths in
// argument order.
func writeFiles(t *testing.T, nameContent ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := 0; i+1 < len(nameContent); i += 2 {
		p := filepath.Join(dir, nameContent[i])
		if err := os.WriteFile(p, []byte(nameContent[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestLoadDefinitionsChecksAcrossFiles(t *testing.T) {
	paths := writeFiles(t, "a.yaml", `vhosts:
  - name: /shop
exchanges:
  - {name: orders, vhost: /shop, type: topic, arguments: {alternate-exchange: unrouted}}
queues:
  - {name: orders, vhost: /, arguments: {x-dead-letter-exchange: dlx}}
  - {name: work, vhost: /shop, arguments: {x-dead-letter-exchange: ""}}
users:
  - {name: app, password-hash: "`+appHash+`"}
permissions:
  - {user: app, vhost: /shop, configure: "*", write: "*", read: "*"}
`, "b.yaml", `vhosts:
  - name: /shop
queues:
  - {name: orders}
  - {name: other, vhost: /nowhere}
bindings:
  - {vhost: /shop, source: orders, destination: ordrs}
  - {vhost: /shop, source: nope, destination: orders, destination-type: exchange}
  - {vhost: /shop, source: amq.topic, destination: work, routing-key: "a.#"}
  - {vhost: /shop, source: amq.topic, destination: work, routing-key: "a.#"}
  - {vhost: /shop, source: orders, destination: amq.fanout, destination-type: exchange}
  - {vhost: /nowhere, source: x, destination: y}
permissions:
  - {user: app, vhost: /shop}
  - {user: bob, vhost: /}
policies:
  - {name: dl, vhost: /shop, pattern: "*", definition: {dead-letter-exchange: dlx, alternate-exchange: amq.direct}}
  - {name: ae, vhost: /shop, pattern: "*", apply-to: exchanges, definition: {alternate-exchange: ae}}
  - {name: ae, vhost: /shop, pattern: "x", definition: {max-length: 1}}
`)
	a, b := paths[0], paths[1]
	_, err := LoadDefinitions(paths...)
	wantProblems(t, err,
		a+`:4:5: exchanges[0]: alternate-exchange "unrouted" in vhost "/shop" is not defined`,
		a+`:6:5: queues[0]: dead-letter-exchange "dlx" in vhost "/" is not defined`,
		b+`:2:5: vhosts[0]: vhost "/shop" is already defined at `+a+`:2:5`,
		b+`:4:5: queues[0]: queue "orders" in vhost "/" is already defined at `+a+`:6:5`,
		b+`:5:5: queues[1]: vhost "/nowhere" is not defined`,
		b+`:7:5: bindings[0]: binding destination queue "ordrs" in vhost "/shop" is not defined`,
		b+`:8:5: bindings[1]: binding source exchange "nope" in vhost "/shop" is not defined`,
		b+`:10:5: bindings[3]: binding from "amq.topic" to queue "work" with routing key "a.#" in vhost "/shop" is already defined at `+b+`:9:5`,
		b+`:12:5: bindings[5]: vhost "/nowhere" is not defined`,
		b+`:14:5: permissions[0]: permission for user "app" in vhost "/shop" is already defined at `+a+`:11:5`,
		b+`:15:5: permissions[1]: permission for unknown user "bob"`,
		b+`:17:5: policies[0]: dead-letter-exchange "dlx" in vhost "/shop" is not defined`,
		b+`:18:5: policies[1]: alternate-exchange "ae" in vhost "/shop" is not defined`,
		b+`:19:5: policies[2]: policy "ae" in vhost "/shop" is already defined at `+b+`:18:5`,
	)
}

func TestLoadDefinitionsReportsEveryFile(t *testing.T) {
	paths := writeFiles(t, "a.yaml", "queues: [{name: a, prefech: 1}]\n", "b.yaml", "queues: [{name: b, durable: 1}]\n")
	_, err := LoadDefinitions(append(paths, paths[0]+".missing")...)
	wantProblems(t, err,
		paths[0]+`:1:20: queues[0]: unknown key "prefech"; expected one of: name, vhost, durable, auto-delete, arguments`,
		paths[0]+".missing: cannot read the definitions: open "+paths[0]+".missing: no such file or directory",
		paths[1]+":1:29: queues[0].durable: expected a boolean, got 1",
	)
}

func TestLoadDefinitionsMergesAndPrunes(t *testing.T) {
	paths := writeFiles(t, "a.yaml", "queues: [{name: a}]\nprune: false\n", "b.yaml", "queues: [{name: b}]\nprune: true\n", "c.yaml", "")
	defs, err := LoadDefinitions(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs.Queues) != 2 || defs.Queues[0].Name != "a" || defs.Queues[1].Name != "b" || !defs.Prune {
		t.Errorf("merged %+v", defs)
	}
	if defs.Queues[1].Pos.File != paths[1] {
		t.Errorf("queue b's position %v is not in %s", defs.Queues[1].Pos, paths[1])
	}
}

// TestValidateBuiltInCode: definitions built in code (a live export) are checked item by
// item too, at the item's position with the key as the path.
func TestValidateBuiltInCode(t *testing.T) {
	p := Pos{File: "live", Line: 0, Col: 0}
	defs := &Definitions{
		Queues: []Queue{{Pos: Pos{File: "x.yaml", Line: 3, Col: 5}, Vhost: "/", Name: "q", Arguments: map[string]any{"x-max-length": "ten", "x-max-priority": int32(256)}}},
		Users:  []User{{Pos: p, Name: "u", PasswordHash: "aGVsbG8=", HashingAlgorithm: "rabbit_password_hashing_md5"}},
	}
	wantProblems(t, defs.Validate(),
		"live: password-hash: password-hash is not a rabbit_password_hashing_md5 hash (expected base64 of 20 bytes)",
		`x.yaml:3:5: arguments.x-max-length: expected an integer, got "ten"`,
		"x.yaml:3:5: arguments.x-max-priority: x-max-priority 256 is above the maximum of 255",
	)
	if err := (&Definitions{}).Validate(); err != nil {
		t.Errorf("empty definitions: %v", err)
	}
}

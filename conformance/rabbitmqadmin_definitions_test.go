//go:build interop

package conformance

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// namedIn reports whether the raw_json list has an item whose key is value.
func namedIn(l []map[string]any, key, value string) bool {
	return slices.ContainsFunc(l, func(m map[string]any) bool { return m[key] == value })
}

// rabbitmqadmin declares and deletes a user, its permissions and a policy, lists them, and
// prints the broker's reason for a policy key it refuses.
func TestRabbitmqadminUsersPermissionsPolicies(t *testing.T) {
	a := mgmtAPI(t)
	user, pol := uniqueName(t, "user"), uniqueName(t, "policy")
	deleteUserLater(t, a, user)
	t.Cleanup(func() { a.do(http.MethodDelete, "/api/policies/%2F/"+esc(pol), nil) })

	rabbitmqadmin(t, "declare", "user", "name="+user, "password=pw", "tags=management")
	rabbitmqadmin(t, "declare", "permission", "vhost=/", "user="+user, "configure=^conf\\.", "write=.*", "read=.*")
	var users, perms, pols []map[string]any
	rabbitmqadminJSON(t, &users, "list", "users")
	if !namedIn(users, "name", user) {
		t.Errorf("list users lacks %s", user)
	}
	rabbitmqadminJSON(t, &perms, "list", "permissions")
	if !slices.ContainsFunc(perms, func(m map[string]any) bool { return m["user"] == user && m["configure"] == `^conf\.` }) {
		t.Errorf("list permissions lacks %s's: %v", user, perms)
	}
	rabbitmqadmin(t, "declare", "policy", "name="+pol, "pattern=^conf\\.nothing$", `definition={"max-length":3}`, "apply-to=queues")
	rabbitmqadminJSON(t, &pols, "list", "policies")
	if !namedIn(pols, "name", pol) {
		t.Errorf("list policies lacks %s: %v", pol, pols)
	}
	out, err := rabbitmqadminRun(t, "declare", "policy", "name="+pol, "pattern=.*", `definition={"no-such-setting":1}`)
	if err == nil || !strings.Contains(out, "no-such-setting") {
		t.Errorf("a policy with an unknown key: err %v, output %q; want a failure naming the key", err, out)
	}

	rabbitmqadmin(t, "delete", "policy", "name="+pol)
	rabbitmqadmin(t, "delete", "permission", "vhost=/", "user="+user)
	rabbitmqadmin(t, "delete", "user", "name="+user)
	rabbitmqadminJSON(t, &users, "list", "users")
	if namedIn(users, "name", user) {
		t.Errorf("list users still shows %s after delete user", user)
	}
	rabbitmqadminJSON(t, &pols, "list", "policies")
	if namedIn(pols, "name", pol) {
		t.Errorf("list policies still shows %s after delete policy", pol)
	}
}

// rabbitmqadmin export writes the broker's definitions; after the objects are deleted,
// rabbitmqadmin import of the export brings them back. (The file is cut down to this test's
// objects so that the import does not bring back other tests' objects on a shared broker.)
func TestRabbitmqadminExportImport(t *testing.T) {
	a := mgmtAPI(t)
	user, vh, q := uniqueName(t, "user"), uniqueName(t, "vhost"), uniqueName(t, "q")
	deleteUserLater(t, a, user)
	t.Cleanup(func() { a.do(http.MethodDelete, "/api/vhosts/"+esc(vh), nil) })
	rabbitmqadmin(t, "declare", "vhost", "name="+vh)
	rabbitmqadmin(t, "declare", "user", "name="+user, "password=pw", "tags=monitoring")
	rabbitmqadmin(t, "declare", "permission", "vhost="+vh, "user="+user, "configure=.*", "write=.*", "read=.*")
	// The queue comes from a client (declaring queues through the API is another part's).
	qc := channel(t, dialConfig(t, amqpURLAs(t, "guest", "guest", vh), amqp.Config{}))
	if _, err := qc.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rabbitmqadmin(t, "-V", vh, "declare", "policy", "name=p", "pattern=^conf\\.", `definition={"message-ttl":60000}`)

	file := filepath.Join(t.TempDir(), "defs.json")
	rabbitmqadmin(t, "export", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatalf("rabbitmqadmin export wrote something that is not JSON: %v", err)
	}
	mine := map[string]any{"rabbit_version": json.RawMessage(all["rabbit_version"])}
	for key, match := range map[string]func(m map[string]any) bool{
		"users":       func(m map[string]any) bool { return m["name"] == user },
		"vhosts":      func(m map[string]any) bool { return m["name"] == vh },
		"permissions": func(m map[string]any) bool { return m["vhost"] == vh },
		"policies":    func(m map[string]any) bool { return m["vhost"] == vh },
		"queues":      func(m map[string]any) bool { return m["vhost"] == vh },
	} {
		var l []map[string]any
		if err := json.Unmarshal(all[key], &l); err != nil {
			t.Fatalf("export's %s: %v", key, err)
		}
		var kept []map[string]any
		for _, m := range l {
			if match(m) {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			t.Fatalf("the export's %s lack this test's: %s", key, all[key])
		}
		mine[key] = kept
	}
	b, _ := json.Marshal(mine)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}

	rabbitmqadmin(t, "delete", "vhost", "name="+vh)
	rabbitmqadmin(t, "delete", "user", "name="+user)
	if code, _ := a.do(http.MethodGet, "/api/users/"+esc(user), nil); code != http.StatusNotFound {
		t.Fatalf("the user is still there after delete: %d", code)
	}
	rabbitmqadmin(t, "import", file)

	var u map[string]any
	a.json(http.MethodGet, "/api/users/"+esc(user), nil, http.StatusOK, &u)
	if tags, _ := json.Marshal(u["tags"]); string(tags) != `["monitoring"]` {
		t.Errorf("imported user's tags = %s", tags)
	}
	var perm map[string]any
	a.json(http.MethodGet, "/api/permissions/"+esc(vh)+"/"+esc(user), nil, http.StatusOK, &perm)
	var p map[string]any
	a.json(http.MethodGet, "/api/policies/"+esc(vh)+"/p", nil, http.StatusOK, &p)
	if def, _ := json.Marshal(p["definition"]); string(def) != `{"message-ttl":60000}` {
		t.Errorf("imported policy's definition = %s", def)
	}
	var qs []map[string]any
	for deadline := time.Now().Add(2 * timeout); ; { // RabbitMQ lists a queue once its stats are emitted
		a.json(http.MethodGet, "/api/queues/"+esc(vh), nil, http.StatusOK, &qs)
		if namedIn(qs, "name", q) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !namedIn(qs, "name", q) {
		t.Errorf("the imported queue is not listed: %v", qs)
	}
}

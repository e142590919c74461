package mgmt

import (
	"testing"

	"github.com/warrenmq/warren/amqpwire"
)

func TestPropertiesKey(t *testing.T) {
	args, err := amqpwire.NewTable(map[string]any{"x-match": "all"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		args amqpwire.Table
		want string
	}{
		{"", nil, "~"},
		{"routing", nil, "routing"},
		{"a b/c~d", nil, "a+b%2Fc%7Ed"},
	} {
		if got := propertiesKey(c.key, c.args); got != c.want {
			t.Errorf("propertiesKey(%q) = %q, want %q", c.key, got, c.want)
		}
		k, h, ok := splitPropertiesKey(c.want)
		if !ok || k != c.key || h != "" {
			t.Errorf("splitPropertiesKey(%q) = %q %q %v, want %q", c.want, k, h, ok, c.key)
		}
	}
	withArgs := propertiesKey("a~b", args)
	k, h, ok := splitPropertiesKey(withArgs)
	if !ok || k != "a~b" || h != argsHash(args) || len(h) != 6 {
		t.Errorf("key with arguments %q splits to %q %q %v", withArgs, k, h, ok)
	}
	if _, _, ok := splitPropertiesKey("a~b~c"); ok {
		t.Error("a key with two ~ names a binding")
	}
}

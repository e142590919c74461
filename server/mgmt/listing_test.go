package mgmt

import (
	"encoding/json"
	"net/url"
	"testing"
)

// exchanges is the default vhost's exchanges as RabbitMQ 3.10 lists them, in its order.
func exchangesFixture() []map[string]any {
	var out []map[string]any
	for _, x := range [][2]string{{"amq.topic", "topic"}, {"", "direct"}, {"amq.match", "headers"},
		{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.headers", "headers"}, {"amq.rabbitmq.trace", "topic"}} {
		out = append(out, map[string]any{"name": x[0], "type": x[1], "vhost": "/", "durable": true,
			"message_stats": map[string]any{"publish_in": len(x[0]), "publish_in_details": map[string]any{"rate": 0.0}}})
	}
	return out
}

func list(t *testing.T, query string, paginate bool) (string, *listError) {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	out, lerr := listing(q, exchangesFixture(), paginate, []string{"vhost", "name"})
	if lerr != nil {
		return "", lerr
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

// The answers below are RabbitMQ 3.10.8's to the same queries on /api/exchanges/%2F.
func TestListingMatchesRabbitMQ(t *testing.T) {
	for _, c := range []struct{ query, want string }{
		{"sort=type&columns=name,type", `[{"name":"","type":"direct"},{"name":"amq.direct","type":"direct"},{"name":"amq.fanout","type":"fanout"},{"name":"amq.headers","type":"headers"},{"name":"amq.match","type":"headers"},{"name":"amq.rabbitmq.trace","type":"topic"},{"name":"amq.topic","type":"topic"}]`},
		{"sort=type&sort_reverse=true&columns=name,type", `[{"name":"amq.topic","type":"topic"},{"name":"amq.rabbitmq.trace","type":"topic"},{"name":"amq.match","type":"headers"},{"name":"amq.headers","type":"headers"},{"name":"amq.fanout","type":"fanout"},{"name":"amq.direct","type":"direct"},{"name":"","type":"direct"}]`},
		{"page=1&page_size=3&columns=name", `{"filtered_count":7,"item_count":3,"items":[{"name":""},{"name":"amq.direct"},{"name":"amq.fanout"}],"page":1,"page_count":3,"page_size":3,"total_count":7}`},
		{"page=2&page_size=4&columns=name", `{"filtered_count":7,"item_count":3,"items":[{"name":"amq.match"},{"name":"amq.rabbitmq.trace"},{"name":"amq.topic"}],"page":2,"page_count":2,"page_size":4,"total_count":7}`},
		{"page=1&page_size=2&name=AMQ.T&columns=name", `{"filtered_count":1,"item_count":1,"items":[{"name":"amq.topic"}],"page":1,"page_count":1,"page_size":2,"total_count":7}`},
		{"page=1&name=%5Eamq%5C.t&use_regex=true&columns=name", `{"filtered_count":1,"item_count":1,"items":[{"name":"amq.topic"}],"page":1,"page_count":1,"page_size":100,"total_count":7}`},
		{"page=1&name=nothing&columns=name", `{"filtered_count":0,"item_count":0,"items":[],"page":1,"page_count":0,"page_size":100,"total_count":7}`},
		// Without page, name filters nothing (RabbitMQ filters only pages).
		{"name=amq&columns=name&sort=name&sort_reverse=true", `[{"name":"amq.topic"},{"name":"amq.rabbitmq.trace"},{"name":"amq.match"},{"name":"amq.headers"},{"name":"amq.fanout"},{"name":"amq.direct"},{"name":""}]`},
		{"sort=message_stats.publish_in&columns=name,message_stats.publish_in", `[{"message_stats":{"publish_in":0},"name":""},{"message_stats":{"publish_in":9},"name":"amq.match"},{"message_stats":{"publish_in":9},"name":"amq.topic"},{"message_stats":{"publish_in":10},"name":"amq.direct"},{"message_stats":{"publish_in":10},"name":"amq.fanout"},{"message_stats":{"publish_in":11},"name":"amq.headers"},{"message_stats":{"publish_in":18},"name":"amq.rabbitmq.trace"}]`},
		// sort= (empty) keeps the order the endpoint produced.
		{"sort=&columns=name", `[{"name":"amq.topic"},{"name":""},{"name":"amq.match"},{"name":"amq.direct"},{"name":"amq.fanout"},{"name":"amq.headers"},{"name":"amq.rabbitmq.trace"}]`},
	} {
		got, lerr := list(t, c.query, true)
		if lerr != nil || got != c.want {
			t.Errorf("%s:\n got %s %v\nwant %s", c.query, got, lerr, c.want)
		}
	}
}

func TestListingBadParameters(t *testing.T) {
	for _, c := range []struct{ query, kind, reason string }{
		{"page=abc", "bad_request", "Pagination parameters are invalid"},
		{"page_size=abc", "bad_request", "Pagination parameters are invalid"},
		{"page=0", "invalid_pagination_parameters", "Invalid pagination parameters: page number 0, page size undefined"},
		{"page=-1", "invalid_pagination_parameters", "Invalid pagination parameters: page number -1, page size undefined"},
		{"page=1&page_size=501", "invalid_pagination_parameters", "Invalid pagination parameters: page number 1, page size 501"},
		{"page=3&page_size=4", "page_out_of_range", "Page out of range, page: 3 page size: 4, len: 7"},
		{"page=1&name=(&use_regex=true", "bad_request", "Pagination parameters are invalid"},
	} {
		_, lerr := list(t, c.query, true)
		if lerr == nil || lerr.status != 400 || lerr.kind != c.kind || lerr.reason != c.reason {
			t.Errorf("%s: got %+v, want 400 %s %q", c.query, lerr, c.kind, c.reason)
		}
	}
	// page_size=0 without page is not checked, as by RabbitMQ; an endpoint that does not
	// paginate ignores page.
	if _, lerr := list(t, "page_size=0", true); lerr != nil {
		t.Errorf("page_size=0 without page: %v", lerr)
	}
	if got, lerr := list(t, "page=2&columns=name&sort=name", false); lerr != nil || got[0] != '[' {
		t.Errorf("page on an unpaginated endpoint: %s %v", got, lerr)
	}
}

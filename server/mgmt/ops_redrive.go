package mgmt

import (
	"net/http"

	"github.com/warrenmq/warren/server"
)

// redriveSource is what the redrive endpoint needs from the broker.
type redriveSource interface {
	RedriveAs(user, vhost, name string, limit int) (server.RedriveResult, error)
}

// redrive is POST /api/queues/{vhost}/{name}/redrive, Warren's own (RabbitMQ has none): move
// the messages of a dead-letter queue back to the queues they died in (server.RedriveAs).
// The optional body {"count": N} looks at no more than N messages from the head.
func (a *api) redrive(w http.ResponseWriter, r *http.Request, u user, args []string) {
	if !a.vhostAllowed(w, u, args[0]) {
		return
	}
	body, err := decodeBody(r)
	if err != nil {
		a.writeFailure(w, r, u, err, channel)
		return
	}
	limit := -1
	n, present, err := intField(body, "count")
	switch {
	case err != nil:
		a.writeFailure(w, r, u, err, channel)
		return
	case present && n < 0:
		a.writeFailure(w, r, u, bad([]any{"not_integer", n}), channel)
		return
	case present:
		limit = int(min(n, 1<<31))
	}
	res, err := a.src.RedriveAs(u.name, args[0], args[1], limit)
	if err != nil {
		a.writeFailure(w, r, u, err, channel)
		return
	}
	writeJSON(w, map[string]int{"moved": res.Moved, "skipped": res.Skipped, "left": res.Left})
}

package configs

import "testing"

// A definitions file may declare quorum queues and the new exchange types; the quorum rules
// a file can break (not durable, auto-delete, an unknown type, a limit below -1) are reported
// with their positions, and -1 turns a quorum queue's delivery limit off.
func TestDefinitionsQueueAndExchangeTypes(t *testing.T) {
	if _, err := ParseDefinitions("ok.yaml", []byte(`queues:
  - {name: jobs, arguments: {x-queue-type: quorum, x-delivery-limit: -1}}
  - {name: plain, arguments: {x-queue-type: classic}}
exchanges:
  - {name: shard, type: x-consistent-hash, arguments: {hash-header: tenant}}
  - {name: any, type: x-random}
  - {name: local, type: x-local-random}
`)); err != nil {
		t.Fatalf("valid definitions refused: %v", err)
	}
	_, err := ParseDefinitions("defs.yaml", []byte(`queues:
  - {name: a, durable: false, arguments: {x-queue-type: quorum}}
  - {name: b, auto-delete: true, arguments: {x-queue-type: quorum}}
  - {name: c, arguments: {x-queue-type: stream}}
  - {name: d, arguments: {x-delivery-limit: -1}}
`))
	wantProblems(t, err,
		`defs.yaml:2:24: queues[0].durable: a quorum queue must be durable`,
		`defs.yaml:3:28: queues[1].auto-delete: a quorum queue cannot be auto-delete`,
		`defs.yaml:4:41: queues[2].arguments.x-queue-type: x-queue-type "stream" is not one of classic, quorum`,
		`defs.yaml:5:45: queues[3].arguments.x-delivery-limit: x-delivery-limit -1 is below the minimum of 0`,
	)
}

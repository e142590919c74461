package configs

import "testing"

// A delayed-message exchange in a definitions file needs x-delayed-type naming a kind Warren
// routes with; the file is refused before anything is declared.
func TestParseDefinitionsDelayedExchange(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte(`exchanges:
  - {name: ok, type: x-delayed-message, arguments: {x-delayed-type: topic}}
  - {name: none, type: x-delayed-message}
  - {name: bad, type: x-delayed-message, arguments: {x-delayed-type: x-delayed-message}}
`))
	wantProblems(t, err,
		"defs.yaml:3:5: exchanges[1]: a delayed-message exchange needs x-delayed-type: one of direct, fanout, topic, headers",
		"defs.yaml:4:70: exchanges[2].arguments.x-delayed-type: a delayed-message exchange needs x-delayed-type: one of direct, fanout, topic, headers")
}

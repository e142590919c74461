package mgmt

import (
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"net/url"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
)

// propertiesKey is a binding's properties_key, which names it in
// /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{properties_key}: "~" for an empty
// routing key without arguments, the routing key quoted as a form value ("~" written %7E)
// without arguments, else the quoted key, "~" and a hash of the arguments. RabbitMQ hashes the
// Erlang term of the arguments (phash2); Warren hashes their wire encoding the same way (32
// bits, base64url without padding). Clients only echo keys they were given, so the
// difference cannot be seen.
func propertiesKey(routingKey string, args amqpwire.Table) string {
	if routingKey == "" && args.Len() == 0 {
		return "~"
	}
	key := strings.ReplaceAll(url.QueryEscape(routingKey), "~", "%7E")
	if args.Len() == 0 {
		return key
	}
	return key + "~" + argsHash(args)
}

// argsHash is the hash part of a properties_key.
func argsHash(args amqpwire.Table) string {
	h := fnv.New32a()
	_, _ = h.Write(args)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], h.Sum32())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// splitPropertiesKey undoes propertiesKey: the routing key and, when the key names a binding
// with arguments, the hash its arguments must have. ok is false for a malformed key (more
// than one "~", or bad quoting), which names no binding.
func splitPropertiesKey(props string) (routingKey, hash string, ok bool) {
	if props == "~" {
		return "", "", true
	}
	parts := strings.Split(props, "~")
	if len(parts) > 2 {
		return "", "", false
	}
	key, err := url.QueryUnescape(parts[0])
	if err != nil {
		return "", "", false
	}
	if len(parts) == 2 {
		hash = parts[1]
	}
	return key, hash, true
}

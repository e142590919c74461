#!/usr/bin/python3
"""pika side of Warren's interop tests (conformance/interop_test.go).

  interop.py publish HOST PORT VHOST USER PASSWORD EXCHANGE KEY MESSAGE_JSON
      Publish one message with publisher confirms and mandatory set; exit 1 if it is
      returned or nacked. MESSAGE_JSON is {"body": str, "properties": {...}}, the
      properties named as pika names them; "headers" may hold strings, ints, floats,
      bools, null, lists and objects.

  interop.py consume HOST PORT VHOST USER PASSWORD QUEUE TIMEOUT_SECONDS
      Wait for one message on QUEUE, acknowledge it and print it as JSON:
      {"body", "exchange", "routing_key", "redelivered", "properties"}. Exit 1 if none
      arrives in time.
"""

import json
import sys

import pika

PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
    "user_id", "app_id",
)


def connect(host, port, vhost, user, password):
    params = pika.ConnectionParameters(
        host=host, port=int(port), virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5,
    )
    return pika.BlockingConnection(params)


def jsonable(value):
    """Headers as JSON: bytes become text; nested tables and arrays recurse."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def publish(host, port, vhost, user, password, exchange, key, message_json):
    message = json.loads(message_json)
    conn = connect(host, port, vhost, user, password)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(**message.get("properties", {}))
        try:
            ch.basic_publish(exchange, key, message["body"].encode("utf-8"), props, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as err:
            print(f"publish failed: {err!r}", file=sys.stderr)
            return 1
        ch.close()
    finally:
        conn.close()
    return 0


def consume(host, port, vhost, user, password, queue, timeout):
    conn = connect(host, port, vhost, user, password)
    try:
        ch = conn.channel()
        for method, props, body in ch.consume(queue, inactivity_timeout=float(timeout)):
            if method is None:
                print(f"no message on {queue} within {timeout}s", file=sys.stderr)
                return 1
            ch.basic_ack(method.delivery_tag)
            out = {
                "body": body.decode("utf-8", "replace"),
                "exchange": method.exchange,
                "routing_key": method.routing_key,
                "redelivered": method.redelivered,
                "properties": {n: jsonable(getattr(props, n)) for n in PROPERTY_NAMES
                               if getattr(props, n) is not None},
            }
            print(json.dumps(out, sort_keys=True))
            ch.cancel()
            break
        ch.close()
    finally:
        conn.close()
    return 0


def main(argv):
    commands = {"publish": (publish, 8), "consume": (consume, 7)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = commands[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))

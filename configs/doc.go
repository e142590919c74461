// Package configs reads Warren's two kinds of operator files: the broker configuration
// (warren.yaml: listeners, data dir, limits, logging) and definitions files (vhosts, users,
// permissions, exchanges, queues, bindings and policies, in the flat shape of RabbitMQ's
// definitions.json). It also imports RabbitMQ definitions.json exports and writes
// definitions back out as YAML.
//
// Files are decoded into yaml.Node trees and walked by hand, so that decoding is strict
// (unknown keys and wrong types are errors, never ignored) and every problem carries the
// file, line and column it comes from. Loading never stops at the first problem: every
// function that reads or validates files returns all the problems it finds as an
// [ErrorList], sorted by position. docs/configuration.md is the reference for both formats.
//
// The package holds no state of its own: everything it knows is in the values it returns.
// The example files operators start from live beside it: configs/warren.yaml and
// configs/definitions/.
package configs

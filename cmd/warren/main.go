// Command warren runs the Warren AMQP 0-9-1 broker, and the operator's commands around it.
//
//	warren [--config warren.yaml] [--listen :5672] [--data-dir ./data] [flags]
//	warren passwd [PASSWORD]                  print a password hash for a definitions file
//	warren config check FILE...               validate configuration and definitions files
//	warren config reload [--config F | --data-dir D | --control-socket S]
//	warren definitions export [--config F | --data-dir D | --control-socket S]
//	warren definitions import FILE.json       print a RabbitMQ definitions.json as YAML
//
// SIGTERM or SIGINT closes every connection with connection.close 320, flushes the store and
// exits cleanly; a second SIGTERM or SIGINT during that shutdown ends the process at once.
// SIGHUP reloads the definitions files. docs/configuration.md has the details.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if err := dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

// dispatch runs the subcommand args name, or the broker.
func dispatch(args []string, stdin io.Reader, stdout io.Writer, stderr *os.File) error {
	if len(args) > 0 {
		switch args[0] {
		case "passwd":
			return passwd(args[1:], stdin, stdout)
		case "config":
			if len(args) > 1 && args[1] == "check" {
				return configCheck(args[2:], stdout)
			}
			if len(args) > 1 && args[1] == "reload" {
				return control(args[2:], "config reload", "reload", stdout)
			}
			return fmt.Errorf("usage: warren config check FILE... | warren config reload [--config FILE | --data-dir DIR | --control-socket PATH]")
		case "definitions":
			if len(args) > 1 && args[1] == "export" {
				return control(args[2:], "definitions export", "export", stdout)
			}
			if len(args) > 1 && args[1] == "import" {
				return importRabbitMQ(args[2:], stdout)
			}
			return fmt.Errorf("usage: warren definitions export [--config FILE | --data-dir DIR | --control-socket PATH] | warren definitions import FILE.json")
		}
	}
	return run(args, stderr)
}

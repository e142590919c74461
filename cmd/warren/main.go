// Command warren runs the Warren AMQP 0-9-1 broker, and the operator's commands around it.
//
//	warren [--config warren.yaml] [--listen :5672] [--data-dir ./data] [flags]
//	warren passwd [PASSWORD]                  print a password hash for a definitions file
//	warren config check FILE...               validate configuration and definitions files
//	warren config reload [--config F | --data-dir D | --control-socket S]
//	warren definitions export [--config F | --data-dir D | --control-socket S]
//	warren definitions drift [--config F | --data-dir D | --control-socket S]
//	warren definitions import FILE.json       print a RabbitMQ definitions.json as YAML
//	warren ctl COMMAND [ARG...]               list, close, purge, delete, status, definitions,
//	                                          cluster, queues (quorum queue members)
//	                                          over the management HTTP API (warren ctl --help)
//
// SIGTERM or SIGINT closes every connection with connection.close 320, flushes the store and
// exits cleanly; a second SIGTERM or SIGINT during that shutdown ends the process at once.
// SIGHUP reloads the definitions files. docs/configuration.md has the details.
//
// Exit status: 0 on success and after -h or --help, 2 for a bad command line, 1 otherwise.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(exitCode(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}

// usageError is a bad command line. printed says the flag package has already reported it,
// with the usage.
type usageError struct {
	err     error
	printed bool
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args with fs, which must use flag.ContinueOnError. A bad flag becomes a
// usageError; -h or --help returns flag.ErrHelp, the usage printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err: err, printed: true}
}

// exitCode reports err and returns the process's exit status: 0 for success and for -h or
// --help (the usage has been printed), 2 for a bad command line, as the flag package's
// ExitOnError does, and 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usage usageError
	isUsage := errors.As(err, &usage)
	if !isUsage || !usage.printed {
		fmt.Fprintln(stderr, "warren:", err)
	}
	if isUsage {
		return 2
	}
	return 1
}

// dispatch runs the subcommand args name, or the broker.
func dispatch(args []string, stdin io.Reader, stdout io.Writer, stderr *os.File) error {
	if len(args) > 0 {
		switch args[0] {
		case "ctl":
			return ctl(args[1:], stdin, stdout, stderr)
		case "passwd":
			return passwd(args[1:], stdin, stdout, stderr)
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
			if len(args) > 1 && args[1] == "drift" {
				return control(args[2:], "definitions drift", "drift", stdout)
			}
			if len(args) > 1 && args[1] == "import" {
				return importRabbitMQ(args[2:], stdout)
			}
			return fmt.Errorf("usage: warren definitions export|drift [--config FILE | --data-dir DIR | --control-socket PATH] | warren definitions import FILE.json")
		}
	}
	return run(args, stderr)
}

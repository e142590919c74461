package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
)

// passwd prints the RabbitMQ-compatible hash (rabbit_password_hashing_sha256) of the password
// given as the argument or, more safely, read from stdin: typed twice at a prompt without echo
// when stdin is a terminal, else the first line.
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const usage = "usage: warren passwd [PASSWORD] (or the password on stdin)"
	var pw string
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	case len(args) == 1:
		pw = args[0]
	case len(args) > 1:
		return usageError{err: errors.New(usage)}
	case isTerminal(stdin):
		var err error
		if pw, err = promptPassword(int(stdin.(*os.File).Fd()), stderr); err != nil {
			return fmt.Errorf("passwd: %w", err)
		}
	default:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("passwd: read the password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return errors.New("passwd: empty password")
	}
	h, err := configs.HashPassword(pw, "")
	if err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}

// isTerminal says whether r is a terminal the password can be read from without echo.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptPassword reads the password twice from the terminal fd with echo off, prompting on
// prompt, and refuses two different entries.
func promptPassword(fd int, prompt io.Writer) (string, error) {
	read := func(label string) (string, error) {
		fmt.Fprint(prompt, label)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt) // the newline the user typed was not echoed
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("Password: ")
	if err != nil || pw == "" {
		return pw, err
	}
	again, err := read("Password (again): ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}

// configCheck validates each file without starting a broker: a broker configuration (which
// names definitions files, checked too) or definitions files, told apart by their keys.
func configCheck(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return errors.New("usage: warren config check FILE [FILE]")
	}
	var errs configs.ErrorList
	var defsFiles []string
	add := func(err error) {
		var el configs.ErrorList
		if errors.As(err, &el) {
			errs = append(errs, el...)
			return
		}
		errs = append(errs, &configs.Error{Msg: err.Error()})
	}
	for _, f := range files {
		kind, err := fileKind(f)
		if err != nil {
			add(err)
			continue
		}
		if kind == "definitions" {
			defsFiles = append(defsFiles, f)
			continue
		}
		b, err := configs.LoadBroker(f)
		if err != nil {
			add(err)
			continue
		}
		for _, l := range b.Listeners {
			if l.Protocol == "amqps" {
				if _, err := l.TLSConfig(); err != nil {
					add(err)
				}
			}
		}
		if len(b.Definitions) > 0 {
			if _, err := configs.LoadDefinitions(b.Definitions...); err != nil {
				add(err)
			} else {
				fmt.Fprintf(stdout, "ok: %s (definitions: %s)\n", f, strings.Join(b.Definitions, ", "))
				continue
			}
		} else {
			fmt.Fprintf(stdout, "ok: %s\n", f)
		}
	}
	if len(defsFiles) > 0 {
		if _, err := configs.LoadDefinitions(defsFiles...); err != nil {
			add(err)
		} else {
			fmt.Fprintf(stdout, "ok: %s\n", strings.Join(defsFiles, ", "))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// fileKind tells a broker configuration from a definitions file by its top-level keys:
// definitions files have vhosts, users, permissions, exchanges, queues, bindings, policies
// or prune (and .json files are RabbitMQ definitions).
func fileKind(path string) (string, error) {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return "definitions", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		for _, k := range []string{"vhosts", "users", "permissions", "exchanges", "queues", "bindings", "policies", "prune"} {
			if bytes.HasPrefix(line, []byte(k+":")) {
				return "definitions", nil
			}
		}
	}
	return "broker", nil
}

// control sends a command to a running broker over its control socket.
func control(args []string, name, command string, stdout io.Writer) error {
	fs := flag.NewFlagSet("warren "+name, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the broker's configuration file (to find its control socket)")
	dataDir := fs.String("data-dir", "", "the broker's data dir (its control socket is warren.sock in it)")
	sock := fs.String("control-socket", "", "the broker's control socket")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the broker")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := *sock
	switch {
	case path != "":
	case *dataDir != "":
		path = filepath.Join(*dataDir, "warren.sock")
	case *cfgPath != "":
		b, err := configs.LoadBroker(*cfgPath)
		if err != nil {
			return err
		}
		path = b.ControlSocketPath()
	default:
		b := configs.DefaultBroker()
		path = b.ControlSocketPath()
	}
	out, err := server.ControlRequest(path, command, *timeout)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	_, err = io.WriteString(stdout, out)
	return err
}

// exportYAML is the export control command: the live definitions as YAML.
func exportYAML(srv *server.Server) (string, error) {
	var b strings.Builder
	if err := srv.ExportDefinitions().WriteYAML(&b); err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	return b.String(), nil
}

// importRabbitMQ converts RabbitMQ definitions.json exports to one YAML definitions file.
func importRabbitMQ(files []string, stdout io.Writer) error {
	if len(files) != 1 {
		return errors.New("usage: warren definitions import FILE.json > definitions.yaml")
	}
	defs, err := configs.LoadDefinitions(files[0])
	if err != nil {
		return err
	}
	return defs.WriteYAML(stdout)
}

// Command warren runs the Warren AMQP 0-9-1 broker.
//
//	warren [--listen :5672] [--data-dir ./data] [--log-level info]
//
// SIGTERM or SIGINT closes every connection with connection.close 320, flushes the store and
// exits cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

func run(args []string, logOut *os.File) error {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	listen := fs.String("listen", ":5672", "TCP address for AMQP 0-9-1 clients")
	dataDir := fs.String("data-dir", "./data", "directory of the Badger store: durable definitions, persistent messages, paged-out backlogs")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	windowMsgs := fs.Int("queue-memory-messages", server.DefaultWindowCount, "ready messages each queue keeps in memory; the rest waits on disk")
	windowBytes := fs.Int("queue-memory-bytes", server.DefaultWindowBytes, "bytes of ready message bodies each queue keeps in memory")
	diskFree := fs.Int64("disk-free-limit", store.DefaultDiskReserve, "free bytes to keep on the data dir's disk: below it persistent publishes are nacked (-1 disables)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := newLogger(logOut, level)

	if *windowMsgs < 1 || *windowBytes < 1 {
		return fmt.Errorf("--queue-memory-messages and --queue-memory-bytes must be positive")
	}
	log.Info().Str("version", server.Version).Str("data_dir", *dataDir).Msg("starting Warren")
	// Listen first: a bad address should not leave a fresh data dir behind. Clients that
	// connect during recovery wait in the kernel's accept queue.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	defer ln.Close()
	if fi, err := os.Stat(*dataDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("data dir %s: not a directory", *dataDir)
	}
	st, err := store.Open(store.Options{Dir: *dataDir, Logger: log, DiskReserve: *diskFree})
	if err != nil {
		return fmt.Errorf("data dir %s: %w", *dataDir, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error().Err(err).Msg("closing the store")
		}
	}()
	srv := server.New(server.Config{Logger: log, Store: st,
		Window: queue.Window{Count: *windowMsgs, Bytes: *windowBytes}})
	if err := srv.Recover(); err != nil {
		return fmt.Errorf("data dir %s: %w", *dataDir, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("signal received, shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, server.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// newLogger writes human-readable logs to a terminal and JSON lines otherwise.
func newLogger(out *os.File, level zerolog.Level) zerolog.Logger {
	var w io.Writer = out
	if fi, err := out.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

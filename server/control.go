package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Control commands, one line each on the control socket.
const (
	ControlReload = "reload"
	ControlExport = "export"
	ControlDrift  = "drift"
)

// ControlHandler runs a control command and returns its output, or an error whose text goes
// back to the caller.
type ControlHandler func(command string) (string, error)

// ServeControl answers control commands on ln (a Unix socket in the data dir, owner-only) until
// ln is closed. Each connection sends one command line and reads "ok\n" or "error\n", then the
// output or the error's text. `warren config reload` and `warren definitions export` use it.
func (s *Server) ServeControl(ln net.Listener, handle ControlHandler) {
	backoff := acceptBackoff{log: s.log, addr: "control socket " + ln.Addr().String()}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if retryableAccept(err) {
				time.Sleep(backoff.failed(err, time.Now()))
				continue
			}
			s.log.Error().Err(err).Msg("control socket: accept failed; control commands are off")
			return
		}
		backoff.succeeded(time.Now())
		go s.controlConn(c, handle)
	}
}

func (s *Server) controlConn(c net.Conn, handle ControlHandler) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	cmd := strings.TrimSpace(line)
	s.log.Info().Str("command", cmd).Msg("control command")
	out, err := handle(cmd)
	if err != nil {
		_, _ = fmt.Fprintf(c, "error\n%s\n", strings.TrimRight(err.Error(), "\n"))
		return
	}
	_, _ = fmt.Fprintf(c, "ok\n%s", out)
}

// ControlRequest sends a command to the broker listening on the control socket at path and
// returns its output; a refused command is an error with the broker's text.
func ControlRequest(path, command string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return "", fmt.Errorf("cannot reach the broker's control socket %s (is it running with this data dir?): %w", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return "", fmt.Errorf("control socket %s: %w", path, err)
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("control socket %s: no answer: %w", path, err)
	}
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		return "", fmt.Errorf("control socket %s: %w", path, err)
	}
	if strings.TrimSpace(status) != "ok" {
		return "", errors.New(strings.TrimRight(b.String(), "\n"))
	}
	return b.String(), nil
}

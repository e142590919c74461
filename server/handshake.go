package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// errAuthFailed ends a handshake whose credentials were refused.
var errAuthFailed = errors.New("authentication failed")

// serverProperties builds the connection.start server-properties table, with RabbitMQ's keys
// and only the capabilities Warren really implements (COMPATIBILITY.md §1). The product and
// version are p's (Config.Product).
func serverProperties(p Product) (amqpwire.Table, error) {
	p = p.withDefaults()
	return amqpwire.NewTable(map[string]any{
		"product":      p.Name,
		"version":      p.Version,
		"platform":     "Go " + runtime.Version(),
		"copyright":    "Copyright (c) the Warren authors",
		"information":  "Licensed under the Apache License 2.0. See https://github.com/warrenmq/warren",
		"cluster_name": "warren@" + hostname(),
		"capabilities": map[string]any{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"consumer_priorities":          true,
			"connection.blocked":           true,
			"per_consumer_qos":             true,
			"authentication_failure_close": true,
			"direct_reply_to":              true,
		},
	})
}

// handshake runs protocol header → start/start-ok → tune/tune-ok → open/open-ok. It returns an
// error when the connection must end; it has already told the peer what it could.
func (c *conn) handshake() error {
	cfg := &c.srv.cfg
	_ = c.nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if err := amqpwire.ReadProtocolHeader(c.nc); err != nil {
		if errors.Is(err, amqpwire.ErrBadProtocolHeader) {
			// 0-9-1 §4.2.2: answer a bad header with the one we speak, then close.
			_, _ = c.nc.Write(amqpwire.ProtocolHeader)
		}
		return fmt.Errorf("protocol header: %w", err)
	}
	props, err := serverProperties(cfg.Product)
	if err != nil {
		return fmt.Errorf("server properties: %w", err)
	}
	if err := c.sendNow(&amqpwire.ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: props,
		Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"}); err != nil {
		return err
	}

	startOk, err := expectMethod[*amqpwire.ConnectionStartOk](c)
	if err != nil {
		return err
	}
	c.readClientCapabilities(startOk.ClientProperties)
	c.clientProps, c.mechanism = startOk.ClientProperties, startOk.Mechanism
	_, c.tls = c.nc.(*tls.Conn)
	c.connectedAt = time.Now()
	user, err := c.authenticate(startOk)
	if err != nil {
		return err
	}
	c.user = user
	c.log = c.log.With().Str("user", user).Logger()

	hb := uint16(cfg.Heartbeat / time.Second)
	if err := c.sendNow(&amqpwire.ConnectionTune{ChannelMax: cfg.ChannelMax, FrameMax: cfg.FrameMax, Heartbeat: hb}); err != nil {
		return err
	}
	tuneOk, err := expectMethod[*amqpwire.ConnectionTuneOk](c)
	if err != nil {
		return err
	}
	if err := c.negotiate(tuneOk); err != nil {
		c.refuse(err)
		return err
	}

	open, err := expectMethod[*amqpwire.ConnectionOpen](c)
	if err != nil {
		return err
	}
	vh := c.srv.vhost(open.VirtualHost)
	if vh == nil {
		err := amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen, "vhost %s not found", open.VirtualHost)
		c.refuse(err)
		return err
	}
	if err := c.srv.checkConnectionLimits(c, vh); err != nil {
		c.refuse(err)
		return err
	}
	if c.srv.access.p.Load().permissions(c.user, vh.Name()) == nil {
		c.log.Warn().Str("vhost", vh.Name()).Msg("vhost access refused")
		err := amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen,
			"access to vhost '%s' refused for user '%s'", vh.Name(), c.user)
		c.refuse(err)
		return err
	}
	c.vh = vh
	c.log = c.log.With().Str("vhost", vh.Name()).Logger()
	_ = c.nc.SetDeadline(time.Time{})
	go c.writeLoop()
	// Open before open-ok goes out, so a client that saw open-ok finds its connection listed
	// (management API, metrics); under wmu, so a forceClose that sees it open writes its
	// connection.close after the open-ok.
	c.srv.counters.connectionsOpened.Add(1)
	c.wmu.Lock()
	c.opened.Store(true)
	c.out.WriteMethod(0, &amqpwire.ConnectionOpenOk{})
	c.wmu.Unlock()
	c.kickWriter()
	return nil
}

// sendNow writes one method straight away; used before the writer goroutine runs.
func (c *conn) sendNow(m amqpwire.Method) error {
	c.wmu.Lock()
	c.out.WriteMethod(0, m)
	err := c.out.Flush()
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("send %s: %w", m.MethodName(), err)
	}
	return nil
}

// expectMethod reads the next handshake method, which must be a T.
func expectMethod[T amqpwire.Method](c *conn) (T, error) {
	var zero T
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return zero, fmt.Errorf("read handshake frame: %w", err)
		}
		if f.Type == amqpwire.FrameHeartbeat {
			continue
		}
		if f.Type != amqpwire.FrameMethod || f.Channel != 0 {
			return zero, fmt.Errorf("handshake: unexpected frame type %d on channel %d", f.Type, f.Channel)
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			return zero, fmt.Errorf("handshake: %w", err)
		}
		t, ok := m.(T)
		if !ok {
			return zero, fmt.Errorf("handshake: expected %T, got %s", zero, m.MethodName())
		}
		return t, nil
	}
}

func (c *conn) readClientCapabilities(props amqpwire.Table) {
	v, ok, err := props.Get("capabilities")
	if err != nil || !ok {
		return
	}
	caps, ok := v.(amqpwire.Table)
	if !ok {
		return
	}
	flag := func(name string) bool {
		v, ok, err := caps.Get(name)
		b, isBool := v.(bool)
		return err == nil && ok && isBool && b
	}
	c.capCancelNotify = flag("consumer_cancel_notify")
	c.capAuthFailureClose = flag("authentication_failure_close")
	c.capBlocked = flag("connection.blocked")
}

// authenticate checks the start-ok response against the configured users.
func (c *conn) authenticate(ok *amqpwire.ConnectionStartOk) (string, error) {
	turn, err := c.awaitLoginTurn()
	if err != nil {
		return "", err
	}
	var user, pass string
	switch ok.Mechanism {
	case "PLAIN":
		// RFC 4616: [authzid] NUL authcid NUL passwd
		parts := bytes.SplitN([]byte(ok.Response), []byte{0}, 3)
		if len(parts) != 3 {
			return "", c.authFailure(turn, ok.Mechanism, "", "malformed PLAIN response")
		}
		user, pass = string(parts[1]), string(parts[2])
	case "AMQPLAIN":
		t := amqpwire.Table(ok.Response)
		lv, _, err1 := t.Get("LOGIN")
		pv, _, err2 := t.Get("PASSWORD")
		l, okL := lv.(string)
		p, okP := pv.(string)
		if err1 != nil || err2 != nil || !okL || !okP {
			return "", c.authFailure(turn, ok.Mechanism, "", "malformed AMQPLAIN response")
		}
		user, pass = l, p
	default:
		err := amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, amqpwire.ClassConnection, amqpwire.MethodConnectionStartOk,
			"unknown authentication mechanism '%s'", ok.Mechanism)
		c.refuse(err)
		return "", err
	}
	u, known := c.srv.access.p.Load().login(user, pass)
	if !known {
		return "", c.authFailure(turn, ok.Mechanism, user, "invalid credentials")
	}
	if u.Loopback && !isLoopback(c.nc.RemoteAddr()) {
		return "", c.authFailure(turn, ok.Mechanism, user, "user '"+user+"' can only connect via localhost")
	}
	return user, nil
}

// authFailure waits for the failure's slot on its source's schedule (authlimit.go), logs the
// reason (in summary when a source keeps failing) and, for clients that asked for it, sends
// connection.close 403 (RabbitMQ's authentication_failure_close); others just see the socket
// close.
func (c *conn) authFailure(turn loginTurn, mechanism, user, why string) error {
	if err := c.awaitRefusal(turn); err != nil {
		return err
	}
	detail := "user '" + user + "' (" + mechanism + "): " + why
	if c.srv.loginLog.note(turn.src, detail, time.Now()) {
		c.log.Warn().Str("user", user).Str("mechanism", mechanism).Str("reason", why).
			Msg("login refused (further refusals for this address are logged in summary)")
	}
	if c.capAuthFailureClose {
		c.refuse(amqpwire.NewConnectionError(amqpwire.CodeAccessRefused, amqpwire.ClassConnection, amqpwire.MethodConnectionStartOk,
			"Login was refused using authentication mechanism %s. For details see the broker logfile.", mechanism))
	}
	return fmt.Errorf("%w: %s", errAuthFailed, why)
}

// refuse sends connection.close for an error during the handshake; the connection then ends
// without waiting for close-ok, as RabbitMQ does before the connection is open.
func (c *conn) refuse(err error) {
	var ce *amqpwire.ConnectionError
	if !errors.As(err, &ce) {
		return
	}
	_ = c.sendNow(&amqpwire.ConnectionClose{ReplyCode: ce.Code, ReplyText: ce.Text, ClassId: ce.ClassID, MethodId: ce.MethodID})
}

// negotiate applies tune-ok the way RabbitMQ validates it: a client value above the server's
// offer (0 counting as unlimited) or a frame_max below the minimum is refused with 530.
func (c *conn) negotiate(t *amqpwire.ConnectionTuneOk) error {
	cfg := &c.srv.cfg
	if t.FrameMax != 0 && t.FrameMax < amqpwire.FrameMinSize {
		return negotiationError("frame_max", "lower", "minimum", uint32(amqpwire.FrameMinSize), t.FrameMax)
	}
	if t.FrameMax == 0 || t.FrameMax > cfg.FrameMax {
		return negotiationError("frame_max", "higher", "maximum", cfg.FrameMax, t.FrameMax)
	}
	if t.ChannelMax == 0 || t.ChannelMax > cfg.ChannelMax {
		return negotiationError("channel_max", "higher", "maximum", uint32(cfg.ChannelMax), uint32(t.ChannelMax))
	}
	c.frameMax = t.FrameMax
	c.channelMax = t.ChannelMax
	c.heartbeat = time.Duration(t.Heartbeat) * time.Second
	c.r.SetMaxFrameSize(c.frameMax)
	return nil
}

func negotiationError(field, cmp, bound string, server, client uint32) error {
	return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionTuneOk,
		"negotiated %s = %d is %s than the %s allowed value (%d)", field, client, cmp, bound, server)
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

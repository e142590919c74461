package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// ctlClient calls the management HTTP API (RabbitMQ's or Warren's) as one user.
type ctlClient struct {
	base           string // scheme://host[:port][/prefix], no trailing slash
	user, password string
	hc             *http.Client
}

// newCtlClient checks o's URL and builds the client, trusting o.caCert for https when set.
func newCtlClient(o ctlOptions) (*ctlClient, error) {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, ctlUsageError("ctl: --url %q: want http://HOST:PORT or https://HOST:PORT, with an optional path prefix", o.url)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.caCert != "" {
		if u.Scheme != "https" {
			return nil, ctlUsageError("ctl: --ca-cert needs an https:// --url")
		}
		pem, err := os.ReadFile(o.caCert)
		if err != nil {
			return nil, fmt.Errorf("ctl: --ca-cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ctl: --ca-cert %s: no PEM certificate in it", o.caCert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &ctlClient{
		base:     strings.TrimRight(u.String(), "/"),
		user:     o.user,
		password: o.password,
		hc:       &http.Client{Transport: tr, Timeout: o.timeout},
	}, nil
}

// apiPath is /api/ followed by the segments, each escaped as one path segment (the vhost
// "/" becomes %2F, as the API wants).
func apiPath(segs ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// apiError is an answer other than 2xx from the API, with RabbitMQ's error body when it has one.
type apiError struct {
	method, url string
	user        string
	status      int
	kind        string // the body's "error"
	reason      string // the body's "reason", or the body's text
}

func (e *apiError) Error() string {
	status := fmt.Sprintf("%d %s", e.status, http.StatusText(e.status))
	msg := status
	if e.reason != "" {
		msg += ": " + e.reason
	}
	if e.status == http.StatusUnauthorized {
		return fmt.Sprintf("user %q refused by %s: %s", e.user, e.url, msg)
	}
	return msg
}

// send makes a request whose answer has no body worth reading (DELETE, POST of definitions).
func (c *ctlClient) send(method, path string, body []byte, hdr map[string]string) error {
	_, _, err := c.do(method, path, body, hdr)
	return err
}

// get returns the body of GET path, which must answer 2xx.
func (c *ctlClient) get(path string) ([]byte, error) {
	_, b, err := c.do(http.MethodGet, path, nil, nil)
	return b, err
}

// getJSON decodes the answer of GET path into v, numbers as json.Number so that they print
// as the API wrote them.
func (c *ctlClient) getJSON(path string, v any) error {
	b, err := c.get(path)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// decodeJSON decodes an answer, numbers as json.Number.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("the answer is not the JSON expected: %w", err)
	}
	return nil
}

func jsonValid(b []byte) bool { return json.Valid(b) }

// do makes one request and returns the status and body; an answer other than 2xx is an
// *apiError (the status and body are returned with it).
func (c *ctlClient) do(method, path string, body []byte, hdr map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	// No Accept header, as rabbitmqadmin: RabbitMQ answers DELETE .../contents with 406 to
	// "Accept: application/json".
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the management API at %s (is the broker running, with --management-listen?): %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, b, nil
	}
	e := &apiError{method: method, url: c.base + path, user: c.user, status: resp.StatusCode}
	var eb struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(b, &eb) == nil && (eb.Error != "" || eb.Reason != "") {
		e.kind, e.reason = eb.Error, eb.Reason
	} else {
		e.reason = strings.TrimSpace(string(b))
		if len(e.reason) > 200 {
			e.reason = e.reason[:200] + "…"
		}
	}
	return resp.StatusCode, b, e
}

// unwrapURLError drops *url.Error's "Get "URL":" prefix: the message says the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

package dovecot

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testKey = "s3cret-api-key"

func writeKey(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "doveadm.key")
	if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeDoveadm answers like Dovecot's doveadm HTTP server: it checks the
// request format and replies with answer(command, tag).
func fakeDoveadm(t *testing.T, answer func(w http.ResponseWriter, body, tag string)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/doveadm/v1" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "Path Not Found")
			return
		}
		if r.Header.Get("Authorization") != "X-Dovecot-API "+base64.StdEncoding.EncodeToString([]byte(testKey)) {
			w.Header().Add("WWW-Authenticate", "X-Dovecot-API")
			w.Header().Add("WWW-Authenticate", `Basic Realm="doveadm"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		b, _ := io.ReadAll(r.Body)
		body := string(b)
		i := strings.LastIndex(body, `,"`)
		tag := strings.TrimSuffix(strings.TrimSuffix(body[i+2:], "]]"), `"`)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		answer(w, body, tag)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, url, key string) *Client {
	t.Helper()
	c, err := New(Config{URL: url, APIKeyFile: writeKey(t, key+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestFormat(t *testing.T) {
	var bodies []string
	srv := fakeDoveadm(t, func(w http.ResponseWriter, body, tag string) {
		bodies = append(bodies, body)
		switch {
		case strings.HasPrefix(body, `[["kick"`):
			fmt.Fprintf(w, `[["doveadmResponse",[{"result":"u@dom"}],"%s"]]`, tag)
		case strings.HasPrefix(body, `[["authCacheFlush"`):
			fmt.Fprintf(w, `[["doveadmResponse",[{"entries":"1"}],"%s"]]`, tag)
		case strings.HasPrefix(body, `[["who"`):
			fmt.Fprintf(w, `[["doveadmResponse",[{"username":"u@dom","connections":"2","service":"imap","pids":"(11 12)","ips":"(127.0.0.1 ::1)"}],"%s"]]`, tag)
		}
	})
	c := newClient(t, srv.URL, testKey) // no path: /doveadm/v1 is added
	ctx := context.Background()
	if n, err := c.Kick(ctx, "u@dom"); err != nil || n != 1 {
		t.Errorf("Kick = %d, %v; want 1, nil", n, err)
	}
	if err := c.AuthCacheFlush(ctx, "u@dom"); err != nil {
		t.Errorf("AuthCacheFlush: %v", err)
	}
	sessions, err := c.Who(ctx, "u@dom")
	want := Session{Username: "u@dom", Service: "imap", Connections: 2, PIDs: []int{11, 12}, IPs: []string{"127.0.0.1", "::1"}}
	if err != nil || len(sessions) != 1 || fmt.Sprint(sessions[0]) != fmt.Sprint(want) {
		t.Errorf("Who = %+v, %v; want [%+v]", sessions, err, want)
	}
	wantBodies := []string{
		`[["kick",{"mask":["u@dom"]},"mailbrake1"]]`,
		`[["authCacheFlush",{"user":["u@dom"]},"mailbrake2"]]`,
		`[["who",{"mask":["u@dom"]},"mailbrake3"]]`,
	}
	if strings.Join(bodies, "\n") != strings.Join(wantBodies, "\n") {
		t.Errorf("request bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(wantBodies, "\n"))
	}
}

func TestErrors(t *testing.T) {
	srv := fakeDoveadm(t, func(w http.ResponseWriter, body, tag string) {
		switch {
		case strings.Contains(body, "nobody@dom"):
			fmt.Fprintf(w, `[["error",{"type":"exitCode", "exitCode":68},"%s"]]`, tag)
		case strings.Contains(body, "temp@dom"):
			fmt.Fprintf(w, `[["error",{"type":"exitCode", "exitCode":75},"%s"]]`, tag)
		case strings.Contains(body, "crash@dom"):
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "Internal Server Error\x01\n<html>")
		case strings.Contains(body, "tag@dom"):
			io.WriteString(w, `[["doveadmResponse",[],"other"]]`)
		case strings.Contains(body, "garbage@dom"):
			io.WriteString(w, `<html>`)
		}
	})
	ctx := context.Background()
	good := newClient(t, srv.URL+"/doveadm/v1", testKey)

	if n, err := good.Kick(ctx, "nobody@dom"); err != nil || n != 0 {
		t.Errorf("Kick without sessions = %d, %v; want 0, nil", n, err)
	}
	err := good.AuthCacheFlush(ctx, "temp@dom")
	var de *Error
	if !errors.As(err, &de) || de.Status != 200 || de.Type != "exitCode" || de.ExitCode != ExitTempFail {
		t.Errorf("exit code 75: got %#v", err)
	} else if !strings.Contains(err.Error(), "doveadm exit code 75 (temporary failure)") {
		t.Errorf("exit code 75: message %q", err)
	}
	if err := good.AuthCacheFlush(ctx, "nobody@dom"); !errors.Is(err, ErrNotFound) {
		t.Errorf("flush exit code 68: got %v, want ErrNotFound", err)
	}
	_, err = good.Kick(ctx, "crash@dom")
	if !errors.As(err, &de) || de.Status != 500 || de.Detail != "Internal Server Error" {
		t.Errorf("HTTP 500: got %#v", err)
	}
	if _, err := good.Kick(ctx, "tag@dom"); err == nil || !strings.Contains(err.Error(), "tagged") {
		t.Errorf("tag mismatch: got %v", err)
	}
	if _, err := good.Kick(ctx, "garbage@dom"); err == nil {
		t.Error("a non-JSON answer was accepted")
	}

	wrong := newClient(t, srv.URL, "wrong-key")
	_, err = wrong.Kick(ctx, "u@dom")
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &de) || de.Status != 401 {
		t.Errorf("wrong key: got %v, want a 401 *Error wrapping ErrUnauthorized", err)
	}
	t.Logf("wrong key: %v", err)

	badPath := newClient(t, srv.URL+"/doveadm/v2", testKey)
	_, err = badPath.Kick(ctx, "u@dom")
	if !errors.As(err, &de) || de.Status != 404 || !strings.Contains(err.Error(), "HTTP 404 Not Found") {
		t.Errorf("wrong path: got %v", err)
	}
}

// TestKeyNeverShown checks that the key appears neither in errors nor in a
// printed Client.
func TestKeyNeverShown(t *testing.T) {
	srv := fakeDoveadm(t, func(w http.ResponseWriter, body, tag string) {})
	c := newClient(t, srv.URL, "wrong-"+testKey)
	_, err := c.Kick(context.Background(), "u@dom")
	encoded := base64.StdEncoding.EncodeToString([]byte("wrong-" + testKey))
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprintf("%v %+v", err, err)} {
		if strings.Contains(s, testKey) || strings.Contains(s, encoded) {
			t.Errorf("key shown in %q", s)
		}
	}
}

func TestCheckAccount(t *testing.T) {
	for _, a := range []string{"", "*", "u*@dom", "u?@dom", "u @dom", "u@dom\n", "u\x00"} {
		if err := checkAccount(a); err == nil {
			t.Errorf("checkAccount(%q) accepted", a)
		}
	}
	for _, a := range []string{"u@dom", "first.last+tag@example.co.uk", "plainuser", "ünï@dom"} {
		if err := checkAccount(a); err != nil {
			t.Errorf("checkAccount(%q): %v", a, err)
		}
	}
}

func TestNewConfig(t *testing.T) {
	key := writeKey(t, testKey)
	for _, cfg := range []Config{
		{URL: "127.0.0.1:8080", APIKeyFile: key},
		{URL: "ftp://h/doveadm/v1", APIKeyFile: key},
		{URL: "http:///doveadm/v1", APIKeyFile: key},
		{URL: "http://doveadm:pw@h:8080/doveadm/v1", APIKeyFile: key},
		{URL: "http://h:8080/doveadm/v1?x=1", APIKeyFile: key},
		{URL: "http://h:8080"},
		{URL: "http://h:8080", APIKeyFile: filepath.Join(t.TempDir(), "missing")},
		{URL: "http://h:8080", APIKeyFile: writeKey(t, " \n")},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		} else if strings.Contains(err.Error(), testKey) {
			t.Errorf("New(%+v): key in %q", cfg, err)
		}
	}
	c, err := New(Config{URL: "https://dovecot.example:8080/", APIKeyFile: key})
	if err != nil || c.url != "https://dovecot.example:8080/doveadm/v1" || c.hc.Timeout != DefaultTimeout {
		t.Errorf("New: %v, url %q", err, c.url)
	}
}

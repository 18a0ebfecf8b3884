package notify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "whsec-0123456789abcdef"

// hookServer answers webhook POSTs with the given statuses in turn (the
// last one repeats) and records the requests.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	reqs     []hookRequest
}

type hookRequest struct {
	Header http.Header
	Body   []byte
}

func startHook(t *testing.T, statuses ...int) *hookServer {
	t.Helper()
	h := &hookServer{statuses: statuses}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{Header: r.Header.Clone(), Body: body})
		status := h.statuses[min(len(h.reqs), len(h.statuses))-1]
		h.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func webhookConfig(t *testing.T, url string, retries int) Config {
	return Config{Webhook: WebhookConfig{
		URL: url, SecretFile: writeFile(t, "secret", testSecret+"\n"), Retries: retries, Timeout: 5 * time.Second,
	}}
}

func TestWebhookSigned(t *testing.T) {
	h := startHook(t, http.StatusNoContent)
	n, clock, waits, logs := newNotifier(t, webhookConfig(t, h.URL+"/hook?token=abc", 0))
	ev := testEvent()
	rs := n.Send(context.Background(), ev)
	if len(rs) != 1 || !rs[0].Sent || rs[0].Err != nil || rs[0].Recipients[0] != h.URL+"/…" {
		t.Fatalf("results %+v", rs)
	}
	reqs := h.requests()
	if len(reqs) != 1 || len(*waits) != 0 {
		t.Fatalf("%d requests, waits %v", len(reqs), *waits)
	}
	r := reqs[0]
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	ts, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	if ts != strconv.FormatInt(t0.Unix(), 10) || !strings.HasPrefix(sig, "sha256=") {
		t.Errorf("timestamp %q, signature %q", ts, sig)
	}
	if err := VerifySignature([]byte(testSecret), ts, sig, r.Body, 5*time.Minute, clock.now()); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	if err := VerifySignature([]byte("another secret"), ts, sig, r.Body, 5*time.Minute, clock.now()); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong secret: %v", err)
	}
	if r.Header.Get(HeaderEvent) != KindPlaybookFinished || len(r.Header.Get(HeaderDelivery)) != 32 {
		t.Errorf("event %q, delivery %q", r.Header.Get(HeaderEvent), r.Header.Get(HeaderDelivery))
	}

	var p WebhookPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindPlaybookFinished || p.NextSteps != ev.NextSteps || !p.SentAt.Equal(t0) ||
		p.Incident.ID != 42 || p.Incident.Account != "alice@example.edu" || len(p.Incident.Steps) != 2 ||
		!slices.Equal(p.Incident.Evidence, ev.Incident.Evidence) || !p.Incident.Opened.Equal(ev.Incident.Opened) {
		t.Errorf("payload %+v", p)
	}
	var raw map[string]any
	json.Unmarshal(r.Body, &raw)
	for _, k := range []string{"kind", "incident", "next_steps", "sent_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload has no %q: %s", k, r.Body)
		}
	}
	mustNotContain(t, "log", logs.String(), testSecret, "token=abc")
}

func TestWebhookRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int
		retries   int
		wantReqs  int
		wantWaits []time.Duration
		wantSent  bool
	}{
		{"500 then success", []int{500, 502, 200}, 0, 3, []time.Duration{time.Second, 2 * time.Second}, true},
		{"no retry on 400", []int{400, 200}, 3, 1, nil, false},
		{"no retry on 401", []int{401, 200}, 3, 1, nil, false},
		{"429 is retried", []int{429, 200}, 3, 2, []time.Duration{time.Second}, true},
		{"retries exhausted", []int{503}, 2, 3, []time.Duration{time.Second, 2 * time.Second}, false},
		{"retries off", []int{503}, -1, 1, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHook(t, tc.statuses...)
			n, clock, waits, _ := newNotifier(t, webhookConfig(t, h.URL, tc.retries))
			r := n.Send(context.Background(), testEvent())[0]
			reqs := h.requests()
			if len(reqs) != tc.wantReqs || !slices.Equal(*waits, tc.wantWaits) || r.Sent != tc.wantSent {
				t.Fatalf("%d requests, waits %v, result %+v", len(reqs), *waits, r)
			}
			last := strconv.Itoa(tc.statuses[min(len(reqs), len(tc.statuses))-1])
			if tc.wantSent && r.Err != nil || !tc.wantSent && (r.Err == nil || !strings.Contains(r.Err.Error(), last)) {
				t.Errorf("error %v, want one with %s", r.Err, last)
			}
			delivery := reqs[0].Header.Get(HeaderDelivery)
			for _, q := range reqs {
				if q.Header.Get(HeaderDelivery) != delivery {
					t.Errorf("delivery id changed between attempts")
				}
				if err := VerifySignature([]byte(testSecret), q.Header.Get(HeaderTimestamp), q.Header.Get(HeaderSignature), q.Body, 0, clock.now()); err != nil {
					t.Errorf("attempt signature: %v", err)
				}
			}
		})
	}

	t.Run("network error is retried", func(t *testing.T) {
		n, _, waits, _ := newNotifier(t, webhookConfig(t, "http://"+refusedAddr(t)+"/", 2))
		r := n.Send(context.Background(), testEvent())[0]
		if r.Sent || r.Err == nil || len(*waits) != 2 || !strings.Contains(r.Err.Error(), "after 3 attempts") {
			t.Errorf("result %+v, waits %v", r, *waits)
		}
	})

	t.Run("context ends the retries", func(t *testing.T) {
		h := startHook(t, 500)
		n, _, _, _ := newNotifier(t, webhookConfig(t, h.URL, 5))
		ctx, cancel := context.WithCancel(context.Background())
		n.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
		r := n.Send(ctx, testEvent())[0]
		if r.Sent || !errors.Is(r.Err, context.Canceled) || len(h.requests()) != 1 {
			t.Errorf("result %+v after %d requests", r, len(h.requests()))
		}
	})
}

func TestVerifySignature(t *testing.T) {
	secret := []byte(testSecret)
	body := []byte(`{"kind":"incident-opened"}`)
	now := time.Unix(1767323045, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := "sha256=" + hex.EncodeToString(sign(secret, ts, body))
	old := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	oldSig := "sha256=" + hex.EncodeToString(sign(secret, old, body))

	for _, tc := range []struct {
		name    string
		ts, sig string
		body    []byte
		now     time.Time
		want    error
	}{
		{"valid", ts, good, body, now, nil},
		{"valid, 4 minutes later", ts, good, body, now.Add(4 * time.Minute), nil},
		{"two values, second valid", ts, "sha256=" + strings.Repeat("00", 32) + ", " + good[len("sha256="):], body, now, ErrBadSignature},
		{"rotation: two sha256 values", ts, "sha256=" + strings.Repeat("00", 32) + "," + good, body, now, nil},
		{"unknown scheme skipped", ts, "v2=abc," + good, body, now, nil},
		{"replayed 6 minutes later", ts, good, body, now.Add(6 * time.Minute), ErrStaleTimestamp},
		{"old timestamp, signed", old, oldSig, body, now, ErrStaleTimestamp},
		{"old signature, fresh timestamp", ts, oldSig, body, now, ErrSignatureMismatch},
		{"from the future", strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "sha256=" + hex.EncodeToString(sign(secret, strconv.FormatInt(now.Add(time.Hour).Unix(), 10), body)), body, now, ErrStaleTimestamp},
		{"body changed", ts, good, []byte(`{"kind":"incident-resolved"}`), now, ErrSignatureMismatch},
		{"upper-case scheme", ts, "SHA256=" + good[7:], body, now, ErrBadSignature},
		{"upper-case hex", ts, "sha256=" + strings.ToUpper(good[7:]), body, now, nil},
		{"no scheme", ts, good[len("sha256="):], body, now, ErrBadSignature},
		{"short", ts, good[:40], body, now, ErrBadSignature},
		{"empty", ts, "", body, now, ErrBadSignature},
		{"timestamp with sign", "+" + ts, good, body, now, ErrBadTimestamp},
		{"timestamp with space", ts + " ", good, body, now, ErrBadTimestamp},
		{"timestamp leading zero", "0" + ts, good, body, now, ErrBadTimestamp},
		{"timestamp empty", "", good, body, now, ErrBadTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(secret, tc.ts, tc.sig, tc.body, 5*time.Minute, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := VerifySignature(nil, ts, good, body, 0, now); err == nil {
		t.Error("empty secret accepted")
	}
}

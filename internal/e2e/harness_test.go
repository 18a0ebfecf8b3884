package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/testnet"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailbrake-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailbrake")
	cmd := exec.Command("go", "build", "-o", binary, "github.com/mailbrake/mailbrake/cmd/mailbrake")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mailbrake:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := testnet.FreeAddr() // never one postfixtest, ldaptest or dovecottest was given
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// syncBuffer is a goroutine-safe log sink for the daemon's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a mailbrake process started by a test.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	log     *syncBuffer
	dataDir string
	socket  string
	config  string
	policy  string
	milter  string
	http    string
	done    chan struct{}
}

// httpAddr is the daemon's HTTP listener (web UI, API, metrics).
func (d *daemon) httpAddr() string { return d.http }

// httpGet returns the body of an unauthenticated GET of path (/metrics,
// /readyz) on the daemon's HTTP listener.
func (d *daemon) httpGet(path string) string {
	d.t.Helper()
	res, err := http.Get("http://" + d.http + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(body)
}

type daemonOptions struct {
	Policy, Milter   string // listen addresses; "" disables
	PostfixConfigDir string
	// ReinjectionListeners is postfix.reinjection_listeners; nil keeps
	// the default.
	ReinjectionListeners []string
	// SyncGrace is postfix.sync_grace; "" keeps the default.
	SyncGrace string
	ExtraYAML string // appended to the generated config
	// DataDir is the data directory; "" makes a private one.
	DataDir string
	// SyncInterval is postfix.sync_interval; "" keeps it off (0s).
	SyncInterval string
}

// startDaemon runs `mailbrake serve` with a private data directory.
func startDaemon(t *testing.T, o daemonOptions) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, log: &syncBuffer{}, dataDir: filepath.Join(dir, "data"), policy: o.Policy, milter: o.Milter, done: make(chan struct{})}
	if o.DataDir != "" {
		d.dataDir = o.DataDir
	}
	d.socket = filepath.Join(d.dataDir, "admin.sock")
	var cfg strings.Builder
	d.http = freeAddr(t)
	fmt.Fprintf(&cfg, "data_dir: %s\nlog: {level: debug}\nhttp: {listen: %s}\n", d.dataDir, d.http)
	if o.Policy != "" {
		fmt.Fprintf(&cfg, "policy: {listen: %s}\n", o.Policy)
	} else {
		cfg.WriteString("policy: {enabled: false}\n")
	}
	if o.Milter != "" {
		fmt.Fprintf(&cfg, "milter: {listen: %s}\n", o.Milter)
	} else {
		cfg.WriteString("milter: {enabled: false}\n")
	}
	if o.SyncInterval == "" {
		o.SyncInterval = "0s"
	}
	fmt.Fprintf(&cfg, "postfix: {config_dir: %s, sync_interval: %s", o.PostfixConfigDir, o.SyncInterval)
	if o.ReinjectionListeners != nil {
		fmt.Fprintf(&cfg, ", reinjection_listeners: [%s]", strings.Join(o.ReinjectionListeners, ", "))
	}
	if o.SyncGrace != "" {
		fmt.Fprintf(&cfg, ", sync_grace: %s", o.SyncGrace)
	}
	cfg.WriteString("}\n")
	cfg.WriteString(o.ExtraYAML)
	d.config = filepath.Join(dir, "mailbrake.yaml")
	if err := os.WriteFile(d.config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("mailbrake log:\n%s", tailLines(d.log.String(), 60))
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.cmd = exec.Command(binary, "serve", "--config", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.done)
	c := api.NewClient(d.socket)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("mailbrake exited at start:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("mailbrake not ready: %v\n%s", err, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// cli runs the mailbrake CLI against this daemon and returns stdout.
func (d *daemon) cli(args ...string) (string, error) {
	cmd := exec.Command(binary, append([]string{"--socket", d.socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("mailbrake %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (d *daemon) mustCLI(args ...string) string {
	d.t.Helper()
	out, err := d.cli(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// holds lists holds in every state through `quarantine list --json`.
func (d *daemon) holds() []store.Hold {
	d.t.Helper()
	var hs []store.Hold
	out := d.mustCLI("quarantine", "list", "--state", "all", "--json")
	if err := json.Unmarshal([]byte(out), &hs); err != nil {
		d.t.Fatalf("quarantine list --json: %v\n%s", err, out)
	}
	return hs
}

func (d *daemon) holdByQueueID(qid string) *store.Hold {
	d.t.Helper()
	for _, h := range d.holds() {
		if h.QueueID == qid {
			return &h
		}
	}
	return nil
}

// waitHold waits until the hold for qid has been recorded.
func (d *daemon) waitHold(qid string) *store.Hold {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if h := d.holdByQueueID(qid); h != nil {
			return h
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no hold recorded for queue id %s", qid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func recipients(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("rcpt%02d@%s", i, domain)
	}
	return out
}

// bySubject returns the delivered transactions whose Subject is subject.
func bySubject(t *testing.T, sink *postfixtest.Sink, subject string) []postfixtest.Delivered {
	t.Helper()
	var out []postfixtest.Delivered
	for _, m := range sink.Messages() {
		h, err := m.Header()
		if err != nil {
			continue
		}
		if h.Get("Subject") == subject {
			out = append(out, m)
		}
	}
	return out
}

func countRcpts(ms []postfixtest.Delivered) int {
	n := 0
	for _, m := range ms {
		n += len(m.Recipients)
	}
	return n
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func inQueue(q []postfixtest.QueueEntry, qid string) string {
	for _, e := range q {
		if e.QueueID == qid {
			return e.QueueName
		}
	}
	return ""
}

// attempted reports that the message is not held and Postfix tried to
// deliver it (the test's relay defers): it is in the deferred queue, or —
// when qmgr took it up again while the agent that deferred it still held
// it ("skipped, still being delivered") — back in incoming or active with
// the delay reason recorded.
func attempted(q []postfixtest.QueueEntry, qid string) bool {
	for _, e := range q {
		if e.QueueID != qid {
			continue
		}
		if e.QueueName == "deferred" {
			return true
		}
		if e.QueueName == "incoming" || e.QueueName == "active" {
			for _, r := range e.Recipients {
				if r.DelayReason != "" {
					return true
				}
			}
		}
	}
	return false
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// outcome is where one sent message ended up.
type outcome int

const (
	outDelivered  outcome = iota // delivered once, not in the queue
	outHeld                      // in Postfix's hold queue, not delivered
	outTempFailed                // refused with a 4xx: the client keeps it
	outLost                      // none of these: an error was reported
)

// outcomes classifies each sent message (subject(i) names message i in the
// sink) against the queue q: delivered, held, temp-failed or lost; a
// permanent refusal or a lost message is a test error.
func outcomes(t *testing.T, in *postfixtest.Instance, q []postfixtest.QueueEntry, results []postfixtest.SendResult, subject func(int) string) []outcome {
	t.Helper()
	out := make([]outcome, len(results))
	for i, r := range results {
		if !r.Accepted {
			out[i] = outLost
			for _, rep := range r.Replies {
				if rep.Code >= 500 {
					t.Errorf("message %d got a permanent %d: %s", i, rep.Code, rep.Text)
				}
				if rep.Code >= 400 && rep.Code < 500 {
					out[i] = outTempFailed
				}
			}
			if out[i] == outLost {
				t.Errorf("message %d neither accepted nor temp-failed:\n%s", i, r.Transcript)
			}
			continue
		}
		got := bySubject(t, in.Sink, subject(i))
		switch place := inQueue(q, r.QueueID); {
		case len(got) > 0 && place == "":
			out[i] = outDelivered
		case len(got) == 0 && place == "hold":
			out[i] = outHeld
		default:
			out[i] = outLost
			t.Errorf("message %d (queue id %s) accepted but neither delivered nor held: delivered %d, queue %q", i, r.QueueID, len(got), place)
		}
	}
	return out
}

// sendHello sends a two-recipient Thunderbird message from from through
// in and fails the test unless Postfix accepted it.
func sendHello(t *testing.T, in *postfixtest.Instance, from, subject string) postfixtest.SendResult {
	t.Helper()
	r := in.Send(t, postfixtest.SendOptions{From: from, To: recipients(2, "dest.example"),
		Headers: map[string]string{"User-Agent": "Mozilla Thunderbird", "Subject": subject}, Body: "hello\n"})
	if !r.Accepted {
		t.Fatalf("%s not accepted: %s", subject, r.Transcript)
	}
	return r
}

// splitRunRule holds a message once the account's hour passes 500
// recipients: the rule sendSplitRun's run trips.
const splitRunRule = `rules:
  - name: run-over-two-mtas
    reason: rate-recipients-hour
    stage: eom
    when: [{fact: recipients_1h, gt: 500}]
    verdict: hold
`

// sendSplitRun sends a run of twelve 50-recipient messages from carol,
// alternating between the MTAs, and waits until the last two (over the
// 500-recipient hour of the shared counts, one through each MTA) are held
// by their nodes; it returns the queue IDs.
func sendSplitRun(t *testing.T, mtas []*postfixtest.Instance, nodes []*daemon) []string {
	t.Helper()
	var qids []string
	for i := range 12 {
		r := mtas[i%2].Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(50, fmt.Sprintf("d%d.example", i)),
			Headers: map[string]string{"X-Mailer": "Mozilla Thunderbird 128.0", "Subject": fmt.Sprintf("newsletter part %d", i)}, Body: "Read it online.\n"})
		if !r.Accepted {
			t.Fatalf("message %d not accepted: %s", i+1, r.Transcript)
		}
		qids = append(qids, r.QueueID)
	}
	for i, want := range []int{10, 11} {
		if h := nodes[i].waitHold(qids[want]); h.Reasons[0] != "rate-recipients-hour" {
			t.Fatalf("message %d held for %v", want+1, h.Reasons)
		}
	}
	return qids
}

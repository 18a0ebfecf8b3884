package quarantine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotInHold is returned when Postfix has no message with that queue ID
// in its hold queue.
var ErrNotInHold = errors.New("message is not in the Postfix hold queue")

// queueIDRe matches Postfix queue IDs, short (hex) and long
// (enable_long_queue_ids) forms. Anything else is refused before it reaches
// a command line.
var queueIDRe = regexp.MustCompile(`^[0-9A-Za-z]{6,32}$`)

// ValidQueueID reports whether s looks like a Postfix queue ID.
func ValidQueueID(s string) bool { return queueIDRe.MatchString(s) }

// Postfix runs the Postfix queue tools.
type Postfix struct {
	ConfigDir string // -c DIR; "" for the default instance
	Postsuper string
	Postqueue string
	Postconf  string
	Postcat   string        // "" means postcat beside Postsuper
	Timeout   time.Duration // per command; default 30s

	mu       sync.Mutex
	queueDir string
}

// QueueEntry is one message from `postqueue -j`.
type QueueEntry struct {
	QueueName   string   `json:"queue_name"` // incoming, active, deferred, hold, maildrop
	QueueID     string   `json:"queue_id"`
	ArrivalTime int64    `json:"arrival_time"`
	Size        int64    `json:"message_size"`
	Sender      string   `json:"sender"`
	Recipients  []string `json:"-"`
}

func (p *Postfix) run(ctx context.Context, name string, args ...string) (stdout, stderr []byte, err error) {
	to := p.Timeout
	if to <= 0 {
		to = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	if p.ConfigDir != "" {
		args = append([]string{"-c", p.ConfigDir}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(e.String())
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return o.Bytes(), e.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return o.Bytes(), e.Bytes(), nil
}

// QueueDir returns Postfix's queue_directory (postconf -h), cached.
func (p *Postfix) QueueDir(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queueDir != "" {
		return p.queueDir, nil
	}
	name := p.Postconf
	if name == "" {
		name = "postconf"
	}
	out, _, err := p.run(ctx, name, "-h", "queue_directory")
	if err != nil {
		return "", err
	}
	dir := strings.TrimSpace(string(out))
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("postconf: queue_directory %q is not absolute", dir)
	}
	p.queueDir = dir
	return dir, nil
}

// InHold reports whether the hold queue holds qid. postsuper reports how
// many messages it touched only to syslog when stderr is not a terminal, so
// the queue file itself is the reliable witness. The hold queue is not
// hashed (hash_queue_names defaults to deferred, defer).
func (p *Postfix) InHold(ctx context.Context, qid string) (bool, error) {
	if !ValidQueueID(qid) {
		return false, fmt.Errorf("invalid queue id %q", qid)
	}
	dir, err := p.QueueDir(ctx)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(filepath.Join(dir, "hold", qid))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("checking hold queue: %w", err)
}

// Release moves a held message to the deferred queue and schedules its
// immediate delivery. postsuper(1): -H moves it from hold to deferred;
// postqueue(1): -i schedules immediate delivery of that queue ID.
func (p *Postfix) Release(ctx context.Context, qid string) error {
	if !ValidQueueID(qid) {
		return fmt.Errorf("invalid queue id %q", qid)
	}
	if in, err := p.InHold(ctx, qid); err != nil {
		return err
	} else if !in {
		return ErrNotInHold
	}
	if _, _, err := p.run(ctx, p.Postsuper, "-H", qid); err != nil {
		return err
	}
	if in, err := p.InHold(ctx, qid); err != nil {
		return err
	} else if in {
		return fmt.Errorf("postsuper -H %s: the message is still on hold", qid)
	}
	// The message is safely in the deferred queue now; a failed flush only
	// delays it until the next queue run.
	if _, _, err := p.run(ctx, p.Postqueue, "-i", qid); err != nil {
		return fmt.Errorf("released, but scheduling immediate delivery failed (it goes out at the next queue run): %w", err)
	}
	return nil
}

// Delete removes a message from the hold queue only.
func (p *Postfix) Delete(ctx context.Context, qid string) error {
	if !ValidQueueID(qid) {
		return fmt.Errorf("invalid queue id %q", qid)
	}
	if in, err := p.InHold(ctx, qid); err != nil {
		return err
	} else if !in {
		return ErrNotInHold
	}
	if _, _, err := p.run(ctx, p.Postsuper, "-d", qid, "hold"); err != nil {
		return err
	}
	if in, err := p.InHold(ctx, qid); err != nil {
		return err
	} else if in {
		return fmt.Errorf("postsuper -d %s: the message is still on hold", qid)
	}
	return nil
}

// Hold puts a queued message (incoming, active or deferred) on hold.
func (p *Postfix) Hold(ctx context.Context, qid string) error {
	if !ValidQueueID(qid) {
		return fmt.Errorf("invalid queue id %q", qid)
	}
	if _, _, err := p.run(ctx, p.Postsuper, "-h", qid); err != nil {
		return err
	}
	if in, err := p.InHold(ctx, qid); err != nil {
		return err
	} else if !in {
		return fmt.Errorf("postsuper -h %s: no such queued message", qid)
	}
	return nil
}

// Headers returns the header block of a queued message (postcat -h -q),
// at most 256 KiB of it.
func (p *Postfix) Headers(ctx context.Context, qid string) (string, error) {
	if !ValidQueueID(qid) {
		return "", fmt.Errorf("invalid queue id %q", qid)
	}
	name := p.Postcat
	if name == "" {
		name = Beside(p.Postsuper, "postcat")
	}
	out, _, err := p.run(ctx, name, "-h", "-q", qid)
	if err != nil {
		return "", err
	}
	if len(out) > 256<<10 {
		out = out[:256<<10]
	}
	return string(out), nil
}

// Queue lists the queue with `postqueue -j` (Postfix 3.1+): one JSON object
// per line.
func (p *Postfix) Queue(ctx context.Context) ([]QueueEntry, error) {
	out, _, err := p.run(ctx, p.Postqueue, "-j")
	if err != nil {
		return nil, err
	}
	return ParseQueueJSON(out)
}

// ParseQueueJSON parses `postqueue -j` output.
func ParseQueueJSON(out []byte) ([]QueueEntry, error) {
	var entries []QueueEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var raw struct {
			QueueEntry
			Recipients []struct {
				Address string `json:"address"`
			} `json:"recipients"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("postqueue -j line %d: %w", line, err)
		}
		e := raw.QueueEntry
		if !ValidQueueID(e.QueueID) {
			return nil, fmt.Errorf("postqueue -j line %d: invalid queue id %q", line, e.QueueID)
		}
		for _, r := range raw.Recipients {
			e.Recipients = append(e.Recipients, r.Address)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading postqueue -j: %w", err)
	}
	return entries, nil
}

// PostconfBeside finds postconf next to postsuper when postsuper is a path.
func PostconfBeside(postsuper string) string { return Beside(postsuper, "postconf") }

// Beside is the Postfix tool name found next to postsuper when postsuper
// is a path, else name itself (looked up in PATH).
func Beside(postsuper, name string) string {
	if strings.Contains(postsuper, "/") {
		return filepath.Join(filepath.Dir(postsuper), name)
	}
	return name
}

// Tool is a Postfix command mailbrake runs, with the configuration key
// that names it.
type Tool struct{ Key, Command string }

// MissingTools returns, for each tool that cannot be run (not found, not
// executable), a line saying which and how to fix it.
func MissingTools(tools []Tool) []string {
	var out []string
	for _, t := range tools {
		if _, err := exec.LookPath(t.Command); err != nil {
			out = append(out, fmt.Sprintf("%s: %q cannot be run (%v); install Postfix or set %s", t.Key, t.Command, err, t.Key))
		}
	}
	return out
}

// MaxQueueLifetime asks Postfix for maximal_queue_lifetime (best effort).
func MaxQueueLifetime(ctx context.Context, pf *Postfix) time.Duration {
	args := []string{"-h", "maximal_queue_lifetime"}
	if pf.ConfigDir != "" {
		args = append([]string{"-c", pf.ConfigDir}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pf.Postconf, args...).Output()
	if err != nil {
		return 0
	}
	return ParsePostfixTime(strings.TrimSpace(string(out)))
}

// ParsePostfixTime parses Postfix time values: a number with an optional
// unit s, m, h, d or w (default d for maximal_queue_lifetime).
func ParsePostfixTime(s string) time.Duration {
	if s == "" {
		return 0
	}
	unit := time.Duration(24 * time.Hour)
	switch s[len(s)-1] {
	case 's':
		unit, s = time.Second, s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	case 'w':
		unit, s = 7*24*time.Hour, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * unit
}

// Package learnbus shares what the detectors learn between the nodes of a
// cluster through one Redis stream: a node publishes each thing its
// detectors learned (a message of a campaign run, an account's volume, an
// account's origin, a phish's reply address, an admin's verdict on a text) and applies what
// the other nodes published, so every node's detectors know the mail of
// every MTA — a phish received through one MTA and answered through
// another is caught, and a text an admin marked as spam on one node is
// held on all of them.
//
// Events are appended to PREFIX"learn" (XADD, trimmed to about MaxLen
// entries) by one writer per node, in batches, and read by one blocking
// reader (XREAD, blocking a second at a time, so a stop waits no longer)
// per node in stream order; a node skips its own. The
// reader's position is saved by the caller (with the detectors' own
// snapshots) and read from there at the next start, so a node that was
// stopped applies what it missed, as long as the stream still holds it
// (a gap is logged). Delivery is at least once: a node killed between
// applying an event and saving the position applies that event again.
//
// Each event carries its node's sequence number (increasing, from the
// node's clock in microseconds); a node applies an event of another node
// only when its number is above the highest it applied from that node
// (HighWater, saved with the position), so an event copied back into the
// stream is not applied twice. With a key (cluster.key_file, the same on
// every node) each event is signed (HMAC-SHA256 over node, kind, number
// and data) and an event without a valid signature is not applied and is
// counted: whoever can write to Redis without the key cannot teach the
// detectors.
//
// While Redis does not answer, published events are kept (up to
// MaxPending, the oldest dropped beyond) and written when it answers;
// each node then learns from its own mail only, as without a cluster.
//
// The package knows nothing of the events' contents: each detector
// encodes its own and applies the others' (Handle).
package learnbus

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Bus.
type Options struct {
	// MaxLen is about how many events the stream keeps (0: 1,000,000):
	// what a node stopped for a while can still catch up on.
	MaxLen int64
	// MaxPending bounds the events kept while Redis does not answer (0:
	// 100,000).
	MaxPending int
	// Key signs and checks events; nil: unsigned.
	Key []byte
}

// Handler applies an event published by another node.
type Handler func(data []byte) error

// Bus is one node's end of the stream.
type Bus struct {
	client   redis.UniversalClient
	stream   string
	node     string
	log      *slog.Logger
	o        Options
	handlers map[string]Handler

	mu      sync.Mutex
	pending []event
	dropped int   // dropped since the last flush that said so
	drops   int64 // dropped ever: front entries gone while a flush ran
	wake    chan struct{}

	pos              atomic.Pointer[string] // the last event applied or skipped
	applied, refused atomic.Int64
	rejected         atomic.Int64 // not signed, wrongly signed or seen before
	warned           atomic.Bool
	down             atomic.Bool
	seq              int64 // the last number this node gave an event (mu)

	hwMu sync.Mutex
	hw   map[string]int64 // per node, the highest number applied
}

type event struct {
	kind, data string
	seq        int64
}

// New returns node's bus on client; its stream is prefix + "learn".
func New(client redis.UniversalClient, prefix, node string, log *slog.Logger, o Options) *Bus {
	if o.MaxLen <= 0 {
		o.MaxLen = 1_000_000
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 100_000
	}
	return &Bus{client: client, stream: prefix + "learn", node: node, log: log, o: o, handlers: map[string]Handler{}, wake: make(chan struct{}, 1),
		hw: map[string]int64{}}
}

// HighWater returns, per node, the highest event number applied: save it
// with the position and give it to SetHighWater at the next start.
func (b *Bus) HighWater() map[string]int64 {
	b.hwMu.Lock()
	hw := maps.Clone(b.hw)
	b.hwMu.Unlock()
	b.mu.Lock()
	if b.seq > 0 {
		hw[b.node] = b.seq // so that a clock set back does not reuse numbers
	}
	b.mu.Unlock()
	return hw
}

// SetHighWater restores what HighWater returned (before Run), and makes
// this node's own numbers start above its own entry.
func (b *Bus) SetHighWater(hw map[string]int64) {
	b.hwMu.Lock()
	for n, q := range hw {
		b.hw[n] = max(b.hw[n], q)
	}
	b.hwMu.Unlock()
	b.mu.Lock()
	b.seq = max(b.seq, hw[b.node])
	b.mu.Unlock()
}

// Rejected returns how many events of other nodes were not applied
// because they were unsigned or wrongly signed (with a key) or carried a
// number already applied.
func (b *Bus) Rejected() int64 { return b.rejected.Load() }

func (b *Bus) sign(node, kind, seq, data string) string {
	m := hmac.New(sha256.New, b.o.Key)
	for _, p := range []string{"mailbrake learnbus", node, kind, seq} {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	m.Write([]byte(data))
	return hex.EncodeToString(m.Sum(nil))
}

// Handle sets the handler of kind; call before Run.
func (b *Bus) Handle(kind string, h Handler) { b.handlers[kind] = h }

// Publish queues an event for the other nodes. It never blocks.
func (b *Bus) Publish(kind string, data []byte) {
	b.mu.Lock()
	if len(b.pending) >= b.o.MaxPending {
		b.pending = b.pending[1:]
		b.dropped++
		b.drops++
	}
	b.seq = max(b.seq+1, time.Now().UnixMicro())
	b.pending = append(b.pending, event{kind, string(data), b.seq})
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many published events wait to be written.
func (b *Bus) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Position returns the ID of the last event read ("" before Run read
// any): save it, and give it to Run at the next start.
func (b *Bus) Position() string {
	if p := b.pos.Load(); p != nil {
		return *p
	}
	return ""
}

// Applied returns how many events of other nodes were applied, and how
// many their handler refused (logged).
func (b *Bus) Applied() (applied, refused int64) { return b.applied.Load(), b.refused.Load() }

// Down reports whether the last write or read failed.
func (b *Bus) Down() bool { return b.down.Load() }

// Run writes published events and applies the other nodes' until ctx
// ends; then it writes what is still pending, for up to a few seconds.
// from is the position saved at the last stop ("": start after the
// stream's current end).
func (b *Bus) Run(ctx context.Context, from string) {
	var wg sync.WaitGroup
	wg.Go(func() { b.write(ctx) })
	b.read(ctx, from)
	wg.Wait()
}

const (
	batch    = 500
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

func (b *Bus) write(ctx context.Context) {
	backoff := retryMin
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			for b.Pending() > 0 && b.flush(fctx) == nil {
			}
			cancel()
			if n := b.Pending(); n > 0 {
				b.log.Warn("cluster: learned events not shared at stop: Redis did not answer", "events", n)
			}
			return
		case <-b.wake:
		case <-time.After(time.Second):
		}
		for b.Pending() > 0 {
			if err := b.flush(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				if !b.down.Swap(true) {
					b.log.Warn("cluster: Redis does not answer; learned events are kept and shared when it does", "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, retryMax)
				break
			}
			backoff = retryMin
		}
	}
}

// flush writes up to one batch of pending events in one pipeline.
func (b *Bus) flush(ctx context.Context) error {
	b.mu.Lock()
	n := min(len(b.pending), batch)
	todo := b.pending[:n:n]
	dropped, drops := b.dropped, b.drops
	b.mu.Unlock()
	if n == 0 {
		return nil
	}
	pipe := b.client.Pipeline()
	for _, e := range todo {
		q := strconv.FormatInt(e.seq, 10)
		vals := []string{"n", b.node, "k", e.kind, "q", q, "d", e.data}
		if b.o.Key != nil {
			vals = append(vals, "s", b.sign(b.node, e.kind, q, e.data))
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: b.stream, MaxLen: b.o.MaxLen, Approx: true, Values: vals})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// Some may have been written: at least once, as documented.
		return err
	}
	b.mu.Lock()
	// Events dropped meanwhile left from the front, where these were.
	done := max(0, n-int(b.drops-drops))
	b.pending = b.pending[done:]
	b.dropped -= dropped
	b.mu.Unlock()
	if dropped > 0 {
		b.log.Warn("cluster: learned events dropped while Redis did not answer (too many kept)", "events", dropped)
	}
	if b.down.Swap(false) {
		b.log.Info("cluster: Redis answers again; learned events shared")
	}
	return nil
}

func (b *Bus) read(ctx context.Context, from string) {
	pos := from
	backoff := retryMin
	checked := from == ""
	for ctx.Err() == nil {
		if pos == "" {
			// Nothing saved: start after the stream's current end.
			last, err := b.client.XRevRangeN(ctx, b.stream, "+", "-", 1).Result()
			if err != nil {
				b.readFailed(ctx, err, &backoff)
				continue
			}
			pos = "0-0"
			if len(last) > 0 {
				pos = last[0].ID
			}
			b.pos.Store(&pos)
		} else if !checked {
			checked = true
			b.checkGap(ctx, from)
		}
		res, err := b.client.XRead(ctx, &redis.XReadArgs{Streams: []string{b.stream, pos}, Count: batch, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			b.readFailed(ctx, err, &backoff)
			continue
		}
		backoff = retryMin
		for _, s := range res {
			for _, m := range s.Messages {
				b.apply(m)
				id := m.ID
				pos = id
				b.pos.Store(&id)
			}
		}
	}
}

// checkGap logs when the stream no longer holds the events after from.
func (b *Bus) checkGap(ctx context.Context, from string) {
	first, err := b.client.XRangeN(ctx, b.stream, "-", "+", 1).Result()
	if err != nil || len(first) == 0 {
		return
	}
	if idLess(from, first[0].ID) && from != "0-0" {
		b.log.Warn("cluster: events learned by other nodes while this one was stopped were trimmed from the stream before it read them", "saved", from, "oldest", first[0].ID)
	}
}

func (b *Bus) readFailed(ctx context.Context, err error, backoff *time.Duration) {
	if ctx.Err() != nil {
		return
	}
	if !b.down.Swap(true) {
		b.log.Warn("cluster: Redis does not answer; the other nodes' learning is applied when it does", "err", err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, retryMax)
}

func (b *Bus) apply(m redis.XMessage) {
	node, _ := m.Values["n"].(string)
	if node == b.node {
		return
	}
	kind, _ := m.Values["k"].(string)
	data, _ := m.Values["d"].(string)
	qs, _ := m.Values["q"].(string)
	if b.o.Key != nil {
		sig, _ := m.Values["s"].(string)
		if sig == "" || qs == "" || !hmac.Equal([]byte(sig), []byte(b.sign(node, kind, qs, data))) {
			b.reject(m, node, kind, "not signed with this node's cluster.key_file")
			return
		}
	}
	if qs != "" { // events of a build before the numbers carry none
		q, err := strconv.ParseInt(qs, 10, 64)
		if err != nil {
			b.reject(m, node, kind, "its number is not readable")
			return
		}
		b.hwMu.Lock()
		seen := q <= b.hw[node]
		if !seen {
			b.hw[node] = q
		}
		b.hwMu.Unlock()
		if seen {
			b.reject(m, node, kind, "applied before (copied back into the stream)")
			return
		}
	}
	h := b.handlers[kind]
	if h == nil {
		// A newer node's event this one does not know: skipped.
		return
	}
	if err := h([]byte(data)); err != nil {
		if b.refused.Add(1) == 1 {
			b.log.Warn("cluster: a learned event from another node was refused", "node", node, "kind", kind, "id", m.ID, "err", err)
		}
		return
	}
	b.applied.Add(1)
}

// idLess compares two stream IDs ("ms-seq").
func idLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) < len(bm)
	}
	if am != bm {
		return am < bm
	}
	if len(as) != len(bs) {
		return len(as) < len(bs)
	}
	return as < bs
}

// reject counts an event not applied, and logs the first.
func (b *Bus) reject(m redis.XMessage, node, kind, why string) {
	b.rejected.Add(1)
	if !b.warned.Swap(true) {
		b.log.Warn("cluster: a learned event in Redis not applied: "+why+"; further ones are only counted", "node", node, "kind", kind, "id", m.ID)
	}
}

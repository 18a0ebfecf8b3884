package loadgen

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Grace periods of the stop logic. hardEndGrace lets a reply that was
// sent just before its deadline arrive; abandonAfter is how long a run
// still waits for its workers after it has closed their connections,
// which makes every blocked read or write return at once.
const (
	hardEndGrace = time.Second
	abandonAfter = 2 * time.Second
)

// workerStats is what one connection records; it is merged into the
// runner's totals when the connection's goroutine ends.
type workerStats struct {
	h        hist
	outcomes map[string]int64
	errs     map[string]int64
	conns    int64
	mods     int64
}

func newWorkerStats() *workerStats {
	return &workerStats{outcomes: map[string]int64{}, errs: map[string]int64{}}
}

// runner is the clock, the stop logic and the bookkeeping that both
// generators share.
//
// The clock: start, then Warmup until measureFrom, then Duration until
// end. A request or message is measured if it starts in
// [measureFrom, end]; none starts after end. At hardEnd (end + timeout +
// grace) the watchdog closes every connection, so a run always returns.
type runner struct {
	c                                common
	start, measureFrom, end, hardEnd time.Time

	admitted atomic.Int64 // measured requests started, for N

	done     chan struct{} // closed when no new work may start
	stopOnce sync.Once
	why      string // set once, before done is closed
	abortWhy string // set by abortNow (execute's goroutine only); overrides why
	aborted  atomic.Bool

	// abortCtx is cancelled when in-flight work must be cut short
	// (cancellation, watchdog); dials use it.
	abortCtx context.Context
	abort    context.CancelFunc
	conns    connSet

	mu       sync.Mutex
	total    workerStats
	merged   int
	sealed   bool
	finished time.Time
}

func newRunner(ctx context.Context, c common) *runner {
	r := &runner{c: c, done: make(chan struct{})}
	r.total = *newWorkerStats()
	r.abortCtx, r.abort = context.WithCancel(ctx)
	r.conns.m = map[net.Conn]struct{}{}
	return r
}

// startClock starts the clock; call it once the connections are dialled.
func (r *runner) startClock() {
	r.start = time.Now()
	r.measureFrom = r.start.Add(r.c.warmup)
	r.end = r.measureFrom.Add(r.c.duration)
	r.hardEnd = r.end.Add(r.c.timeout + hardEndGrace)
}

func (r *runner) stop(why string) {
	r.stopOnce.Do(func() {
		r.why = why
		close(r.done)
	})
}

// abortNow stops the run and cuts in-flight work short: it closes every
// connection. Errors that follow are not recorded, being ours. Only
// execute calls it, once.
func (r *runner) abortNow(why string) {
	r.stop(why)
	if r.aborted.Swap(true) {
		return
	}
	r.abortWhy = why
	r.abort()
	r.conns.closeAll()
}

func (r *runner) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// admit decides whether work starting at t0 (now, or the intended send
// time of a paced request) may go ahead and whether it is measured. It
// stops the run at the end of the clock, also for paced requests that
// are late because the server is slower than the rate, and after N
// measured starts.
func (r *runner) admit(t0 time.Time) (send, measured bool) {
	if r.stopped() {
		return false, false
	}
	if t0.After(r.end) || time.Now().After(r.end) {
		r.stop(StopDuration)
		return false, false
	}
	if t0.Before(r.measureFrom) {
		return true, false
	}
	if r.c.n > 0 && r.admitted.Add(1) > r.c.n {
		r.stop(StopCount)
		return false, false
	}
	return true, true
}

// sleepUntil waits until t or until the run stops; it reports whether
// the run is still going.
func (r *runner) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return !r.stopped()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.done:
		return false
	}
}

// deadline is the I/O deadline of a step starting now.
func (r *runner) deadline() time.Time {
	dl := time.Now().Add(r.c.timeout)
	if dl.After(r.hardEnd) {
		return r.hardEnd
	}
	return dl
}

// recordErr counts err unless the run was aborted, which is what caused it.
func (r *runner) recordErr(ws *workerStats, prefix string, err error) {
	if r.aborted.Load() {
		return
	}
	ws.errs[prefix+classify(err)]++
}

// execute runs work on r.c.conns goroutines until the run stops, and
// makes sure it does stop: at the end of the clock, after N, when ctx is
// done, or at the latest at hardEnd, when the watchdog closes every
// connection.
func (r *runner) execute(ctx context.Context, work func(wid int, ws *workerStats)) {
	var wg sync.WaitGroup
	for wid := range r.c.conns {
		wg.Go(func() {
			ws := newWorkerStats()
			defer r.merge(ws)
			work(wid, ws)
		})
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()

	clock := time.NewTimer(time.Until(r.end))
	defer clock.Stop()
	select {
	case <-clock.C:
		r.stop(StopDuration)
	case <-r.done:
	case <-ctx.Done():
		r.abortNow(StopCancelled)
	}

	watchdog := time.NewTimer(time.Until(r.hardEnd))
	defer watchdog.Stop()
	select {
	case <-allDone:
	case <-ctx.Done():
		r.abortNow(StopCancelled)
	case <-watchdog.C:
		r.abortNow(StopWatchdog)
	}
	select {
	case <-allDone:
	case <-time.After(abandonAfter):
		// A worker stuck outside any I/O we control. Its stats are
		// left out (merge discards them once the result is sealed).
	}
	r.mu.Lock()
	r.finished = time.Now()
	r.mu.Unlock()
}

func (r *runner) merge(ws *workerStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed {
		return
	}
	t := &r.total
	t.h.merge(&ws.h)
	for k, v := range ws.outcomes {
		t.outcomes[k] += v
	}
	for k, v := range ws.errs {
		t.errs[k] += v
	}
	t.conns += ws.conns
	t.mods += ws.mods
	r.merged++
}

// result seals the totals and builds the Result.
func (r *runner) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sealed = true
	t := &r.total
	res := &Result{
		Kind: r.c.kind, Label: r.c.label, Addr: r.c.addr, Conns: r.c.conns,
		Users: r.c.users, Skew: r.c.skew, Rcpts: r.c.rcpts, Started: r.start,
		Requests: int64(t.h.n), Latency: t.h.latency(),
		Errors: t.errs, Outcomes: t.outcomes, Connections: t.conns,
		Modifications: t.mods, Stopped: r.why,
	}
	if r.abortWhy != "" {
		res.Stopped = r.abortWhy
	}
	if missing := r.c.conns - r.merged; missing > 0 {
		res.Errors["abandoned_conns"] += int64(missing)
	}
	end := r.finished
	if end.After(r.end) {
		end = r.end
	}
	if el := end.Sub(r.measureFrom); el > 0 {
		res.Elapsed = el
		res.PerSecond = float64(res.Requests) / el.Seconds()
	}
	return res
}

// connSet tracks open connections so the watchdog and cancellation can
// close them all.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// add tracks c; after closeAll it closes c instead and reports false.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		_ = c.Close()
	}
	clear(s.m)
}

// trackedConn removes itself from its set when closed.
type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.set.remove(c.Conn) })
	return c.Conn.Close()
}

// dial opens a tracked connection to t.
func (r *runner) dial(t target) (net.Conn, error) {
	d := net.Dialer{Timeout: r.c.timeout}
	nc, err := d.DialContext(r.abortCtx, t.network, t.address)
	if err != nil {
		return nil, err
	}
	if !r.conns.add(nc) {
		return nil, net.ErrClosed
	}
	return &trackedConn{Conn: nc, set: &r.conns}, nil
}

// predial dials n connections one after another before the clock starts:
// some servers (a listen backlog of 5 in policyd-rate-limit) drop a burst
// of connection attempts. Each gets a few tries; it fails only if none
// could be opened.
func (r *runner) predial(t target, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var lastErr error
	ok := 0
	for i := range conns {
		for try := range 5 {
			if try > 0 {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-r.abortCtx.Done():
					closeAll(conns)
					return nil, r.abortCtx.Err()
				}
			}
			c, err := r.dial(t)
			if err == nil {
				conns[i] = c
				ok++
				break
			}
			lastErr = err
			if r.abortCtx.Err() != nil {
				closeAll(conns)
				return nil, r.abortCtx.Err()
			}
		}
	}
	if ok == 0 {
		return nil, lastErr
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// errBadReply is a policy reply without action=, or one too long.
var errBadReply = errors.New("malformed reply")

// classify names an error for Result.Errors.
func classify(err error) string {
	var ne net.Error
	s := err.Error()
	switch {
	case errors.Is(err, errBadReply):
		return "bad_reply"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case strings.Contains(s, "negotiate"):
		return "negotiate"
	default:
		return "other"
	}
}

// userDist draws user numbers: Zipf with exponent skew over [0, n) if
// skew > 1 (user 0 is the heaviest), uniform otherwise.
type userDist struct {
	rng  *rand.Rand
	zipf *rand.Zipf
	n    int
}

func newUserDist(rng *rand.Rand, n int, skew float64) *userDist {
	u := &userDist{rng: rng, n: n}
	if skew > 1 && n > 1 {
		u.zipf = rand.NewZipf(rng, skew, 1, uint64(n-1))
	}
	return u
}

func (u *userDist) next() int {
	if u.zipf != nil {
		return int(u.zipf.Uint64())
	}
	return u.rng.IntN(u.n)
}

// workerRand returns worker wid's random source: reproducible for a seed,
// different for each worker.
func workerRand(seed uint64, wid int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(wid)*0x9e3779b97f4a7c15+salt))
}

// docNets are the documentation prefixes (RFC 5737) that generated client
// addresses come from; they only ever appear as text in requests.
var docNets = [...]string{"192.0.2.", "198.51.100.", "203.0.113."}

func clientAddr(user int) string {
	return docNets[user%3] + strconv.Itoa(1+(user/3)%254)
}

// Package logsink batches the daemon's log lines into few write system
// calls. Under load the daemon logs thousands of lines a second (a line per
// held or deferred message); writing each to stderr with its own write(2)
// costs the request path a system call per line and holds the log
// handler's lock while it runs. A Writer copies each line into a buffer and
// returns; a goroutine writes what gathered within a short delay in one
// call, in order.
//
// What is lost: on SIGKILL or a crash, the lines of the last delay (10 ms
// by default) that were not written yet. Close writes everything and
// switches to writing each line at once, so nothing is lost on a normal
// stop. Memory is bounded: a writer that falls behind by MaxBuffer makes
// callers wait for it instead of growing.
package logsink

import (
	"io"
	"sync"
	"time"
)

// Defaults for New.
const (
	DefaultDelay     = 10 * time.Millisecond
	DefaultFlushSize = 64 << 10
	DefaultMaxBuffer = 4 << 20
)

// Writer is an io.Writer whose writes reach out within Delay.
type Writer struct {
	out       io.Writer
	delay     time.Duration
	flushSize int
	maxBuffer int

	outMu  sync.Mutex // held while writing to out: keeps batches in order
	mu     sync.Mutex
	room   *sync.Cond // the buffer was taken by the writer
	buf    []byte
	closed bool
	err    error // the last error out returned

	wake     chan struct{} // a line arrived in an empty buffer
	full     chan struct{} // the buffer reached flushSize
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Options tune a Writer; zero values take the defaults.
type Options struct {
	Delay     time.Duration // how long lines gather before a write
	FlushSize int           // a buffer this large is written at once
	MaxBuffer int           // writers wait while this much is unwritten
}

// New starts a Writer that writes to out. Close it to write what is left.
func New(out io.Writer, o Options) *Writer {
	if o.Delay <= 0 {
		o.Delay = DefaultDelay
	}
	if o.FlushSize <= 0 {
		o.FlushSize = DefaultFlushSize
	}
	if o.MaxBuffer < o.FlushSize {
		o.MaxBuffer = max(DefaultMaxBuffer, o.FlushSize)
	}
	w := &Writer{out: out, delay: o.Delay, flushSize: o.FlushSize, maxBuffer: o.MaxBuffer,
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.room = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write copies p into the buffer (p is not retained). After Close it
// writes p to out at once.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.outMu.Lock()
		defer w.outMu.Unlock()
		return w.out.Write(p)
	}
	for len(w.buf) >= w.maxBuffer && !w.closed {
		signal(w.full)
		w.room.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return w.Write(p)
	}
	was := len(w.buf)
	w.buf = append(w.buf, p...)
	n := len(w.buf)
	w.mu.Unlock()
	if was == 0 {
		signal(w.wake)
	}
	if n >= w.flushSize && was < w.flushSize {
		signal(w.full)
	}
	return len(p), nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *Writer) run() {
	defer close(w.done)
	var spare []byte
	t := time.NewTimer(w.delay)
	t.Stop()
	for {
		stopping := false
		select {
		case <-w.wake:
		case <-w.full:
		case <-w.stop:
			stopping = true
		}
		if !stopping {
			// Let more lines gather, unless the buffer is full already.
			t.Reset(w.delay)
			select {
			case <-t.C:
			case <-w.full:
				t.Stop()
			case <-w.stop:
				t.Stop()
				stopping = true
			}
		}
		spare = w.flush(spare, stopping)
		if stopping {
			return
		}
	}
}

// flush writes the buffer, handing back the emptied one for reuse; last
// marks the Writer closed in the same step, so a line written after it
// goes out after this batch.
func (w *Writer) flush(spare []byte, last bool) []byte {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.mu.Lock()
	b := w.buf
	w.buf = spare[:0]
	if last {
		w.closed = true
	}
	w.room.Broadcast()
	w.mu.Unlock()
	if len(b) > 0 {
		if _, err := w.out.Write(b); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}
	if cap(b) > w.maxBuffer { // do not keep a burst's buffer for ever
		return nil
	}
	return b
}

// Close writes what is buffered and makes later writes go to out at once.
// It returns the last error out returned, if any. It is safe to call more
// than once.
func (w *Writer) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

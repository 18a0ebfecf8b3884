package logsink

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each write it was given.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.fail != nil {
		return 0, c.fail
	}
	return c.buf.Write(p)
}

func (c *countingWriter) snapshot() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.writes
}

// TestEveryLineInOrder: lines from many goroutines all arrive, each whole
// and in each goroutine's order, in far fewer writes than lines; a line
// written after Close goes out at once, after everything before it.
func TestEveryLineInOrder(t *testing.T) {
	out := &countingWriter{}
	w := New(out, Options{Delay: time.Millisecond, FlushSize: 4096, MaxBuffer: 8192})
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g=%d i=%d %s\n", g, i, strings.Repeat("x", i%50))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "after close\n")
	got, writes := out.snapshot()
	all := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(all) != writers*lines+1 || all[len(all)-1] != "after close" {
		t.Fatalf("%d lines, last %q", len(all), all[len(all)-1])
	}
	next := make([]int, writers)
	for _, l := range all[:len(all)-1] {
		var g, i int
		if _, err := fmt.Sscanf(l, "g=%d i=%d", &g, &i); err != nil || i != next[g] || l != fmt.Sprintf("g=%d i=%d %s", g, i, strings.Repeat("x", i%50)) {
			t.Fatalf("line %q out of order or torn (want i=%d)", l, next[g])
		}
		next[g]++
	}
	if writes >= writers*lines/4 {
		t.Errorf("%d writes for %d lines: not batched", writes, writers*lines)
	}
}

// TestLinesArriveWithoutClose: a single line is written within the delay,
// without waiting for more or for Close.
func TestLinesArriveWithoutClose(t *testing.T) {
	out := &countingWriter{}
	w := New(out, Options{Delay: time.Millisecond})
	defer w.Close()
	w.Write([]byte("one line\n"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if got, _ := out.snapshot(); got == "one line\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a line never reached the writer")
		}
	}
}

// TestBoundedBuffer: while out is stuck, writers wait once MaxBuffer is
// unwritten instead of growing the buffer; they go on when out does.
func TestBoundedBuffer(t *testing.T) {
	block := make(chan struct{})
	var mu sync.Mutex
	var got bytes.Buffer
	out := writerFunc(func(p []byte) (int, error) {
		<-block
		mu.Lock()
		defer mu.Unlock()
		return got.Write(p)
	})
	w := New(out, Options{Delay: time.Millisecond, FlushSize: 1024, MaxBuffer: 1024})
	line := bytes.Repeat([]byte("y"), 511)
	line = append(line, '\n')
	wrote := make(chan int, 100)
	go func() {
		for i := range 20 {
			w.Write(line)
			wrote <- i
		}
		close(wrote)
	}()
	// The writer takes one buffer and blocks in out; two more lines fill
	// the next buffer; the writer of the line after that waits.
	time.Sleep(50 * time.Millisecond)
	w.mu.Lock()
	buffered := len(w.buf)
	w.mu.Unlock()
	if buffered > 1024+len(line) {
		t.Fatalf("%d bytes buffered past MaxBuffer 1024", buffered)
	}
	if n := len(wrote); n >= 20 {
		t.Fatalf("all %d writes returned while out was stuck", n)
	}
	close(block)
	for range wrote {
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	if got.Len() != 20*len(line) {
		t.Fatalf("%d bytes written, want %d", got.Len(), 20*len(line))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCloseReportsWriteError: a failed write of out is reported by Close;
// Close twice is harmless.
func TestCloseReportsWriteError(t *testing.T) {
	out := &countingWriter{fail: errors.New("disk full")}
	w := New(out, Options{})
	w.Write([]byte("x\n"))
	if err := w.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close lost the error")
	}
}

// BenchmarkWrite is what a log line costs its caller.
func BenchmarkWrite(b *testing.B) {
	w := New(discard{}, Options{})
	defer w.Close()
	line := []byte(`time=2026-12-04T14:57:50.799Z level=INFO msg=verdict path=policy conn=6 stage=eom action=hold reasons=[rate-recipients-hour] queue_id=F71F3290077` + "\n")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		w.Write(line)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

package ops

import (
	"testing"
	"time"
)

// TestKeyedMutex: one key's holder does not block another key; a second
// locker of the same key waits; nothing is left behind.
func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	unlockA := k.lock("a@example.edu")
	done := make(chan struct{})
	go func() {
		k.lock("b@example.edu")()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("another account's lock waited")
	}
	got := make(chan struct{})
	go func() {
		k.lock("a@example.edu")()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("the same account locked twice")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	<-got
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 0 {
		t.Fatalf("%d entries left", len(k.m))
	}
}

package redistest

import "testing"

// TestStartStop: the server answers, stops, and answers again on the same
// port.
func TestStartStop(t *testing.T) {
	in := New(t)
	if err := in.ping(); err != nil {
		t.Fatal(err)
	}
	in.Stop()
	if err := in.ping(); err == nil {
		t.Fatal("answers after Stop")
	}
	in.Start()
	if err := in.ping(); err != nil {
		t.Fatal(err)
	}
}

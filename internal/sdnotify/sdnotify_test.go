package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
)

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v %v", sent, err)
	}

	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := Notify(Ready + "\n" + Status("serving\npolicy")); !sent || err != nil {
		t.Fatalf("Notify: %v %v", sent, err)
	}
	buf := make([]byte, 256)
	n, _, err := l.ReadFromUnix(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1\nSTATUS=serving policy" {
		t.Fatalf("datagram %q", got)
	}

	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := Notify(Ready); err == nil {
		t.Fatal("a relative NOTIFY_SOCKET accepted")
	}
}

// Package sdnotify tells systemd about the daemon's state (sd_notify(3)):
// READY=1 once every listener is open, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 at shutdown. Without $NOTIFY_SOCKET (not started by
// systemd with Type=notify) every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Messages sd_notify(3) defines.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notify sends state to $NOTIFY_SOCKET and reports whether there was one.
// state is one or more NEWLINE-separated assignments; Status formats a
// STATUS= line.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // abstract socket
	} else if !strings.HasPrefix(path, "/") {
		return true, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q is neither a path nor an abstract socket", path)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return true, fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return true, fmt.Errorf("sdnotify: %w", err)
	}
	return true, nil
}

// Status is a STATUS= line for Notify (systemctl status shows it).
func Status(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

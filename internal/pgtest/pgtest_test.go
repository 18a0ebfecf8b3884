package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServer: a database per caller, the password required, and the data
// kept across a restart on the same port, after a stop or a kill.
func TestServer(t *testing.T) {
	in := New(t)
	db := in.NewDB(t)
	if db2 := in.NewDB(t); db2 == db {
		t.Fatalf("NewDB returned %q twice", db)
	}
	in.Exec(t, db, "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('before')")

	ctx := context.Background()
	if c, err := pgx.Connect(ctx, in.ConnString(db)+"&password=wrong"); err == nil {
		c.Close(ctx)
		t.Fatal("connected with a wrong password")
	}

	in.Stop()
	if c, err := pgx.Connect(ctx, in.DSN(db)); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	in.Start()
	// Killed with a connection open (a crash): what was committed is there
	// after the restart.
	c0, err := pgx.Connect(ctx, in.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c0.Exec(ctx, "INSERT INTO kept VALUES ('committed')"); err != nil {
		t.Fatal(err)
	}
	in.Kill()
	if err := c0.Ping(ctx); err == nil {
		t.Fatal("a connection survived Kill")
	}
	c0.Close(ctx)
	in.Start()
	c, err := pgx.Connect(ctx, in.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after Kill and Start: %d rows, %v", n, err)
	}
	var v, listen string
	if err := c.QueryRow(ctx, "SELECT v FROM kept ORDER BY v LIMIT 1").Scan(&v); err != nil || v != "before" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
	if err := c.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, %v", listen, err)
	}
	var sock string
	if err := c.QueryRow(ctx, "SHOW unix_socket_directories").Scan(&sock); err != nil || !strings.HasPrefix(sock, in.Dir) {
		t.Errorf("unix_socket_directories = %q, %v; want %s", sock, err, in.Dir)
	}
}

package postgres

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckConnString: what config check says of cluster.postgres.url is
// what New accepts (pool_* settings included), a password written in the
// string is refused while one pgx would take from PGPASSWORD or .pgpass
// is not, and no message quotes the string.
func TestCheckConnString(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	for _, c := range []struct {
		s    string
		want error // nil, ErrConnStringPassword, or errBad for any other
	}{
		{"postgres://mailbrake@127.0.0.1/mailbrake?sslmode=disable", nil},
		{"postgresql://mailbrake@db.example.net:5433/mb?sslmode=verify-full&pool_max_conns=8", nil},
		{"host=db.example.net user=mailbrake dbname=mb sslmode=verify-full sslpassword='a b'", nil},
		{"postgres://mailbrake:s3cret-inline@127.0.0.1/mailbrake", ErrConnStringPassword},
		{"postgres://mailbrake@127.0.0.1/mailbrake?password=s3cret-inline", ErrConnStringPassword},
		{"host=127.0.0.1 user=mailbrake password=s3cret-inline", ErrConnStringPassword},
		{"password = s3cret-inline host=127.0.0.1", ErrConnStringPassword},
		{"postgres://mailbrake@127.0.0.1/mailbrake?pool_max_conns=0&x=s3cret-inline", errBad},
		{"postgres://mailbrake@127.0.0.1/mailbrake?pool_max_conns=many&x=s3cret-inline", errBad},
		{"postgres://%zz-s3cret-inline", errBad},
	} {
		err := CheckConnString(c.s)
		switch {
		case c.want == nil && err != nil, c.want == ErrConnStringPassword && !errors.Is(err, ErrConnStringPassword),
			c.want == errBad && (err == nil || errors.Is(err, ErrConnStringPassword)):
			t.Errorf("%q: %v, want %v", c.s, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-inline") {
			t.Errorf("%q: the message quotes the string: %v", c.s, err)
		}
		st, nerr := New(Options{ConnString: c.s})
		if nerr == nil {
			st.Close()
		}
		if (nerr == nil) != (c.want != errBad) {
			t.Errorf("%q: New says %v, CheckConnString %v", c.s, nerr, err)
		}
	}
}

var errBad = errors.New("any other error")

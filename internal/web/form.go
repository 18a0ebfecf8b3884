package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// pathID returns the {id} of the path; anything but a positive integer
// names no record.
func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// intParam reads a non-negative integer, def when empty, at most max.
func intParam(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %q is not a non-negative number", errBadForm, s)
	}
	return min(n, max), nil
}

// timeLayouts are the forms a time filter is accepted in: what an HTML
// datetime-local input sends, and RFC 3339. Times without a zone are UTC,
// as every time shown is.
var timeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02 15:04:05Z", "2006-01-02 15:04", "2006-01-02"}

func timeParam(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a time like 2006-01-02T15:04 (UTC)", errBadForm, s)
}

// withQuery returns p with the non-empty values of q as its query.
func withQuery(p string, q url.Values) string {
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// backOr returns the form's local "back" path, or def.
func backOr(r *http.Request, def string) string {
	return cmp.Or(localPath(r.PostFormValue("back")), def)
}

// isRowRequest reports an htmx request that wants one table row back.
func isRowRequest(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.PostFormValue("fragment") == "row"
}

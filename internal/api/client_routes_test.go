package api

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
)

// fill gives every string "x" and every number 1, recursively, so that a
// path built from a request has no empty segment.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		if v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem())
		}
	}
}

// TestClientFollowsRouteTable: every call the CLI's client makes is a
// route of the table (method and path), and every route of the table is
// called by the client, so the client, the mux and the permission gate
// cannot drift apart.
func TestClientFollowsRouteTable(t *testing.T) {
	mux := http.NewServeMux()
	var mu sync.Mutex
	hit := map[string]bool{}
	var unmatched []string
	for _, r := range Routes() {
		mux.HandleFunc(r.Pattern(), func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			hit[r.Pattern()] = true
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("null"))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		unmatched = append(unmatched, req.Method+" "+req.URL.Path)
		mu.Unlock()
		http.NotFound(w, req)
	})
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := NewClient(sock)
	methods := reflect.TypeOf((*Methods)(nil)).Elem()
	cv := reflect.ValueOf(c)
	for i := 0; i < methods.NumMethod(); i++ {
		m := methods.Method(i)
		fn := cv.MethodByName(m.Name)
		args := []reflect.Value{reflect.ValueOf(context.Background())}
		for j := 1; j < fn.Type().NumIn(); j++ {
			a := reflect.New(fn.Type().In(j)).Elem()
			fill(a)
			args = append(args, a)
		}
		fn.Call(args) // the answers do not matter here, only the requests
	}
	sort.Strings(unmatched)
	for _, u := range unmatched {
		t.Errorf("the client calls %s, which is not a route", u)
	}
	for _, r := range Routes() {
		if !hit[r.Pattern()] {
			t.Errorf("route %s is never called by the client", r.Pattern())
		}
	}
}

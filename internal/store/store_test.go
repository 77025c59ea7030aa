package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

type rec struct {
	Name string            `json:"name"`
	N    int               `json:"n"`
	Tags map[string]string `json:"tags,omitempty"`
}

func open(t *testing.T, dir string) *Store[rec] {
	t.Helper()
	s, err := Open[rec](dir, "rec", 2)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCRUD(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for _, id := range []string{"b", "a", "c"} {
		if err := s.Create(id, rec{Name: id}); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
	}
	if err := s.Create("a", rec{}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Create duplicate: got %v, want AlreadyExists", err)
	}
	got, err := s.Update("a", func(r *rec) error { r.N = 7; return nil })
	if err != nil || got.N != 7 {
		t.Fatalf("Update: %+v, %v", got, err)
	}
	if _, err := s.Update("missing", func(*rec) error { return nil }); !errdefs.IsNotFound(err) {
		t.Fatalf("Update missing: got %v, want NotFound", err)
	}
	if err := s.Delete("c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete("c"); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	if _, ok := s.Get("c"); ok {
		t.Fatal("Get after Delete found the record")
	}
	want := []rec{{Name: "a", N: 7}, {Name: "b"}}
	if got := s.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	if got := open(t, dir).List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("List after reopen = %+v, want %+v", got, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), `{"version":2,"kind":"rec","data":{"name":"a","n":7}}`; got != want {
		t.Fatalf("a.json = %s, want %s", got, want)
	}
}

func TestUpdateFailureChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Create("a", rec{Name: "a", Tags: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Update("a", func(r *rec) error {
		r.Tags["k"] = "changed" // must not reach the stored value: fn works on a deep copy
		r.N = 1
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: got %v, want fn's error", err)
	}
	want := rec{Name: "a", Tags: map[string]string{"k": "v"}}
	if got, _ := s.Get("a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("memory after failed Update = %+v, want %+v", got, want)
	}
	if got, _ := open(t, dir).Get("a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("disk after failed Update = %+v, want %+v", got, want)
	}
}

func TestCreateStoresACopy(t *testing.T) {
	s := open(t, t.TempDir())
	v := rec{Name: "a", Tags: map[string]string{"k": "v"}}
	if err := s.Create("a", v); err != nil {
		t.Fatal(err)
	}
	v.Tags["k"] = "changed"
	if got, _ := s.Get("a"); got.Tags["k"] != "v" {
		t.Fatalf("caller's map aliased the stored record: %+v", got)
	}
}

func TestInvalidIDs(t *testing.T) {
	s := open(t, t.TempDir())
	for name, id := range map[string]string{
		"empty":      "",
		"slash":      "a/b",
		"dotdot":     "..",
		"inner dots": "a..b",
		"hidden":     ".tmp-a",
		"nul":        "a\x00b",
		"too long":   strings.Repeat("x", maxIDLen+1),
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Create(id, rec{}); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Create(%q) = %v, want InvalidArgument", id, err)
			}
			if _, err := s.Update(id, func(*rec) error { return nil }); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Update(%q) = %v, want InvalidArgument", id, err)
			}
			if err := s.Delete(id); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Delete(%q) = %v, want InvalidArgument", id, err)
			}
		})
	}
	if err := s.Create("sha256:"+strings.Repeat("a", 64), rec{}); err != nil {
		t.Errorf("Create with a digest id: %v", err)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	const workers, perWorker = 8, 50
	dir := t.TempDir()
	s := open(t, dir)
	ids := []string{"a", "b"}
	for _, id := range ids {
		if err := s.Create(id, rec{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		id := ids[w%len(ids)]
		wg.Go(func() {
			for range perWorker {
				if _, err := s.Update(id, func(r *rec) error { r.N++; return nil }); err != nil {
					t.Error(err)
					return
				}
				s.Get(id)
				s.List()
			}
		})
	}
	wg.Wait()
	want := workers / len(ids) * perWorker
	for _, st := range []*Store[rec]{s, open(t, dir)} {
		for _, id := range ids {
			if got, _ := st.Get(id); got.N != want {
				t.Errorf("%s.N = %d, want %d (lost updates)", id, got.N, want)
			}
		}
	}
}

// TestInterruptedWrite fails every step of a write once and checks that the failed operation changed neither
// memory nor disk and left no temp file behind.
func TestInterruptedWrite(t *testing.T) {
	steps := []string{"create", "write", "sync", "rename", "sync-dir"}
	type op struct {
		run  func(s *Store[rec]) error
		want *rec // the record "a" after the failed operation; nil when absent
	}
	old := rec{Name: "a", N: 1}
	ops := map[string]op{
		"create": {run: func(s *Store[rec]) error { return s.Create("new", rec{Name: "new"}) }},
		"update": {run: func(s *Store[rec]) error {
			_, err := s.Update("a", func(r *rec) error { r.N = 2; return nil })
			return err
		}, want: &old},
	}
	for opName, o := range ops {
		for _, step := range steps {
			t.Run(opName+"/"+step, func(t *testing.T) {
				dir := t.TempDir()
				s := open(t, dir)
				if err := s.Create("a", old); err != nil {
					t.Fatal(err)
				}
				injected := errors.New("injected")
				fired := false
				s.beforeStep = func(got string) error {
					if got == step && !fired {
						fired = true
						return injected
					}
					return nil
				}
				if err := o.run(s); !errors.Is(err, injected) {
					t.Fatalf("got %v, want the injected error", err)
				}
				id := "a"
				if o.want == nil {
					id = "new"
				}
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), tempPrefix) {
						t.Errorf("temp file %s left behind", e.Name())
					}
				}
				for where, st := range map[string]*Store[rec]{"memory": s, "disk": open(t, dir)} {
					got, ok := st.Get(id)
					switch {
					case o.want == nil && ok:
						t.Errorf("%s: failed Create left record %+v", where, got)
					case o.want != nil && (!ok || !reflect.DeepEqual(got, *o.want)):
						t.Errorf("%s: record = %+v (present %v), want %+v", where, got, ok, *o.want)
					}
				}
			})
		}
	}
}

func TestOpen(t *testing.T) {
	valid := `{"version":2,"kind":"rec","data":{"name":"x"}}`
	cases := map[string]struct {
		file    string // content of x.json
		wantErr []string
		want    rec
	}{
		"current version": {file: valid, want: rec{Name: "x"}},
		"older version":   {file: `{"version":1,"kind":"rec","data":{"name":"x","gone":true}}`, want: rec{Name: "x"}},
		"newer version":   {file: `{"version":3,"kind":"rec","data":{}}`, wantErr: []string{"x.json", "version 3", "supported version 2"}},
		"empty file":      {file: ``, wantErr: []string{"x.json", "corrupt"}},
		"truncated":       {file: valid[:20], wantErr: []string{"x.json", "corrupt"}},
		"bad data":        {file: `{"version":2,"kind":"rec","data":{"n":"seven"}}`, wantErr: []string{"x.json", "corrupt"}},
		"no data":         {file: `{"version":2,"kind":"rec"}`, wantErr: []string{"x.json", "no data"}},
		"null data":       {file: `{"version":2,"kind":"rec","data":null}`, wantErr: []string{"x.json", "no data"}},
		"no version":      {file: `{"kind":"rec","data":{}}`, wantErr: []string{"x.json", "version 0"}},
		"other kind":      {file: `{"version":2,"kind":"pod","data":{}}`, wantErr: []string{"x.json", `kind "pod"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "x.json"), tc.file)
			s, err := Open[rec](dir, "rec", 2)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Open succeeded, want error mentioning %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Get("x"); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Get = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOpenRemovesTempFilesAndIgnoresOthers(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, tempPrefix+"a-123")
	writeFile(t, tmp, `{"version":2,"kind":"re`)
	writeFile(t, filepath.Join(dir, "notes.txt"), "hello")
	if err := os.Mkdir(filepath.Join(dir, "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file not removed: %v", err)
	}
	if n := len(s.List()); n != 0 {
		t.Fatalf("List has %d records, want 0", n)
	}
}

func TestOpenRejectsBadVersion(t *testing.T) {
	if _, err := Open[rec](t.TempDir(), "rec", 0); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Open version 0: got %v, want InvalidArgument", err)
	}
}

func ExampleStore_Update() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	s, _ := Open[rec](dir, "rec", 1)
	_ = s.Create("a", rec{Name: "a"})
	r, _ := s.Update("a", func(r *rec) error { r.N++; return nil })
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	// Output: {"name":"a","n":1}
}

func TestFind(t *testing.T) {
	s := open(t, t.TempDir())
	for _, id := range []string{"abc1", "abc2", "abd", "x", "xylophone"} {
		if err := s.Create(id, rec{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		id   string
		want string // "" when not found
	}{
		"exact":              {"abd", "abd"},
		"exact and a prefix": {"x", "x"},
		"unique prefix":      {"xy", "xylophone"},
		"ambiguous prefix":   {"abc", ""},
		"no match":           {"zz", ""},
		"empty":              {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := s.Find(tc.id)
			if ok != (tc.want != "") || got.Name != tc.want {
				t.Fatalf("Find(%q) = %q, %v; want %q", tc.id, got.Name, ok, tc.want)
			}
		})
	}
}

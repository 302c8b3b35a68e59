package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// source is a database in memory: values by column ("table.column").
type source struct {
	cols    []Candidate
	vals    map[string][]string
	failing map[string]error // table -> error of its probe
	mu      sync.Mutex
	probed  []string // tables probed
	sampled []string // columns sampled
}

func (s *source) Candidates(context.Context) ([]Candidate, error) { return s.cols, nil }

func (s *source) Probe(_ context.Context, cols []Candidate, n int) ([][]string, error) {
	s.mu.Lock()
	s.probed = append(s.probed, cols[0].Table)
	s.mu.Unlock()
	if err := s.failing[cols[0].Table]; err != nil {
		return nil, err
	}
	out := make([][]string, len(cols))
	for i, c := range cols {
		v := s.vals[c.Table+"."+c.Name]
		out[i] = v[:min(n, len(v))]
	}
	return out, nil
}

func (s *source) Sample(_ context.Context, c Candidate, n int) ([]string, error) {
	s.mu.Lock()
	s.sampled = append(s.sampled, c.Table+"."+c.Name)
	s.mu.Unlock()
	v := s.vals[c.Table+"."+c.Name]
	return v[:min(n, len(v))], nil
}

// storage holds files; err, when set, is its answer for everything else.
type storage struct {
	files map[string]bool
	err   error
	mu    sync.Mutex
	stats int
}

func (s *storage) Stat(p string) (cdccleaner.File, error) {
	s.mu.Lock()
	s.stats++
	s.mu.Unlock()
	if s.files[p] {
		return cdccleaner.File{Path: p}, nil
	}
	if s.err != nil {
		return cdccleaner.File{}, s.err
	}
	return cdccleaner.File{}, fs.ErrNotExist
}

// failing is a storage whose lookups of the names in fail fail.
type failing struct {
	storage
	fail map[string]bool
}

func (s *failing) Stat(p string) (cdccleaner.File, error) {
	if s.fail[p] {
		return cdccleaner.File{}, errors.New("503 Slow Down")
	}
	return s.storage.Stat(p)
}

var errNameTooLong = syscall.ENAMETOOLONG

func cand(table, name string, t cdccleaner.ColumnType) Candidate {
	return Candidate{Column: cdccleaner.Column{Schema: "public", Table: table, Name: name, Type: t}}
}

func files(paths ...string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		m[p] = true
	}
	return m
}

// numbered returns n values made by format from 1..n.
func numbered(format string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	return out
}

func TestSearch(t *testing.T) {
	media := &storage{files: files(numbered("photos/%d.jpg", 30)...)}
	for _, p := range numbered("docs/%d.pdf", 30) {
		media.files[p] = true
	}
	bucket := &storage{files: files(numbered("k%d-xkf2ohq2kr7h1uy8qbtm", 30)...)}
	src := &source{
		cols: []Candidate{
			cand("blog_post", "cover", typeText),
			cand("blog_post", "title", typeText),
			cand("blog_post", "cover_url", typeText),
			cand("document", "attachments", typeJSONB),
			cand("gallery_photo", "image", typeText),
			cand("gallery_photo", "tags", typeArray),
			cand("mostly_missing", "file", typeText),
			cand("blob", "key", typeText),
		},
		vals: map[string][]string{
			"blog_post.cover":     numbered("photos/%d.jpg", 25),
			"blog_post.title":     numbered("Holiday number %d", 25),
			"blog_post.cover_url": numbered("https://cdn.example.com/media/photos/%d.jpg", 25),
			"document.attachments": func() []string {
				var out []string
				for i := 1; i <= 25; i++ {
					out = append(out, fmt.Sprintf(`{"files": [{"path": "docs/%d.pdf", "name": "Doc %d.pdf"}], "cover": "photos/%d.jpg"}`, i, i, i+100))
				}
				return out
			}(),
			"gallery_photo.image": numbered("photos/%d.jpg", 25),
			"gallery_photo.tags":  {"{summer,beach}", "{winter}"},
			// One file of twenty exists: chance, not a reference.
			"mostly_missing.file": append([]string{"photos/1.jpg"}, numbered("gone/%d.jpg", 19)...),
			"blob.key":            numbered("k%d-xkf2ohq2kr7h1uy8qbtm", 25),
		},
	}
	res, err := Search(context.Background(), Config{
		Source:   src,
		Storages: map[string]cdccleaner.Statter{"media": media, "bucket": bucket},
		Configured: []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "image"},
			// A template names the column it reads: blob.key is configured.
			{Storage: "bucket", Schema: "public", Table: "blob", Template: keyTemplate(t)}},
		Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Finding{}
	for _, f := range res.Findings {
		got[f.Column.Table+"."+f.Column.Name+"@"+f.Column.Storage] = f
	}
	want := map[string]struct {
		paths, present, spelled int
		jsonPath                string
		known                   bool
	}{
		"blog_post.cover@media":      {20, 20, 0, "", false},
		"blog_post.cover_url@media":  {20, 20, 20, "", false},
		"document.attachments@media": {20, 20, 0, "files[*].path", false},
		"gallery_photo.image@media":  {20, 20, 0, "", true},
		"blob.key@bucket":            {20, 20, 0, "", true},
	}
	for k, w := range want {
		f, ok := got[k]
		if !ok {
			t.Errorf("%s not found", k)
			continue
		}
		if f.Paths != w.paths || f.Present != w.present || f.Spelled != w.spelled || f.Column.JSONPath.String() != w.jsonPath || f.Known() != w.known {
			t.Errorf("%s: %d of %d present (%d spelled) at %q, known %v; want %d of %d (%d) at %q, known %v",
				k, f.Present, f.Paths, f.Spelled, f.Column.JSONPath, f.Known(), w.present, w.paths, w.spelled, w.jsonPath, w.known)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected finding %s: %s", k, got[k].Summary())
		}
	}
	if f := got["blog_post.cover_url@media"]; f.Prefix != "https://cdn.example.com/media/" || f.Named == "" {
		t.Errorf("cover_url: prefix %q, example %q named %q", f.Prefix, f.Example, f.Named)
	}
	if res.Tables != 5 || res.Columns != 8 {
		t.Errorf("%d tables, %d columns searched; want 5, 8", res.Tables, res.Columns)
	}
	// Only columns whose probe named a file are sampled further.
	for _, c := range src.sampled {
		if c == "blog_post.title" || c == "gallery_photo.tags" {
			t.Errorf("%s was sampled though no probe value named a file", c)
		}
	}
	un := res.Unconfigured()
	var names []string
	for _, f := range un {
		names = append(names, f.Column.Table+"."+f.Column.Name)
	}
	if strings.Join(names, " ") != "blog_post.cover blog_post.cover_url document.attachments" { // blob.key: by its template
		t.Errorf("unconfigured: %v", names)
	}
}

func TestSearchNotesAndFailures(t *testing.T) {
	ctx := context.Background()
	vals := map[string][]string{"a.f": numbered("%d.jpg", 10), "b.f": numbered("%d.jpg", 10)}
	cols := []Candidate{cand("a", "f", typeText), cand("b", "f", typeText)}

	t.Run("a table that cannot be read is noted", func(t *testing.T) {
		src := &source{cols: cols, vals: vals, failing: map[string]error{"a": &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}}}
		res, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": &storage{files: files(numbered("%d.jpg", 10)...)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Findings) != 1 || res.Findings[0].Column.Table != "b" {
			t.Errorf("findings %v", res.Findings)
		}
		if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "public.a was not searched") {
			t.Errorf("notes %q", res.Notes)
		}
	})
	t.Run("a lost connection ends the search", func(t *testing.T) {
		src := &source{cols: cols, vals: vals, failing: map[string]error{"a": errors.New("conn closed")}}
		if _, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": &storage{}}}); err == nil {
			t.Error("no error")
		}
	})
	t.Run("a storage that does not answer fails the search", func(t *testing.T) {
		src := &source{cols: cols, vals: vals}
		_, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": &storage{err: errors.New("403 Forbidden")}}})
		if err == nil || !strings.Contains(err.Error(), `storage "media"`) {
			t.Errorf("err = %v", err)
		}
		if len(src.probed) != 0 {
			t.Errorf("tables were read before the storage was found unreachable: %v", src.probed)
		}
	})
	t.Run("names that cannot exist are absent", func(t *testing.T) {
		src := &source{cols: cols, vals: vals}
		st := &storage{files: files(numbered("%d.jpg", 10)...), err: &fs.PathError{Op: "lstat", Path: "x", Err: errNameTooLong}}
		res, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": st}})
		if err != nil || len(res.Findings) != 2 || len(res.Notes) != 0 {
			t.Errorf("err %v, findings %d, notes %q", err, len(res.Findings), res.Notes)
		}
	})
	t.Run("columns the role may not read are counted and noted", func(t *testing.T) {
		hidden := cand("c", "f", typeText)
		hidden.Unreadable = true
		hidden2 := cand("c", "g", typeText)
		hidden2.Unreadable = true
		src := &source{cols: append(append([]Candidate{}, cols...), hidden, hidden2), vals: vals}
		res, err := Search(ctx, Config{Source: src, Role: "cleaner", Storages: map[string]cdccleaner.Statter{"media": &storage{files: files(numbered("%d.jpg", 10)...)}}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Unreadable.Columns != 2 || res.Unreadable.Tables != 1 || res.Columns != 2 || res.Complete() {
			t.Errorf("unreadable %+v, columns %d, complete %v", res.Unreadable, res.Columns, res.Complete())
		}
		if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], `role "cleaner" may not read 2 columns of 1 table`) || !strings.Contains(res.Notes[0], "incomplete") {
			t.Errorf("notes %q", res.Notes)
		}
		for _, p := range src.probed {
			if p == "c" {
				t.Error("an unreadable table was read")
			}
		}
	})
	t.Run("failed lookups are unknown, not absent", func(t *testing.T) {
		// 1-4 exist, 5-9 fail, 10 is absent: 4 of the 5 answered exist.
		st := &failing{storage: storage{files: files(numbered("%d.jpg", 4)...)}, fail: files("5.jpg", "6.jpg", "7.jpg", "8.jpg", "9.jpg")}
		src := &source{cols: cols[:1], vals: vals}
		res, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": st}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Findings) != 1 || res.Findings[0].Paths != 5 || res.Findings[0].Present != 4 {
			t.Errorf("findings %+v, want 4 of 5 present", res.Findings)
		}
		if res.Complete() || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "5 lookups") || !strings.Contains(res.Notes[0], "unknown") {
			t.Errorf("notes %q", res.Notes)
		}
	})
	t.Run("each name is looked up once", func(t *testing.T) {
		st := &storage{files: files(numbered("%d.jpg", 10)...)}
		src := &source{cols: cols, vals: vals}
		res, err := Search(ctx, Config{Source: src, Storages: map[string]cdccleaner.Statter{"media": st}})
		if err != nil {
			t.Fatal(err)
		}
		// One lookup of reachableProbe, then each of the ten names once.
		if st.stats != 11 || res.Lookups != 10 {
			t.Errorf("%d lookups (%d counted), want 11 (10)", st.stats, res.Lookups)
		}
	})
}

func keyTemplate(t *testing.T) *cdccleaner.Template {
	tpl, err := cdccleaner.ParseTemplate("{key}", func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	return &tpl
}

package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

var (
	_ cdccleaner.PrefixLister = (*memStorage)(nil)
	_ cdccleaner.DirPruner    = (*memStorage)(nil)
)

// ListPrefix lists the files (or, below ".trash/", the trashed files)
// below prefix.
func (m *memStorage) ListPrefix(ctx context.Context, prefix string, fn func(cdccleaner.File) error) error {
	m.mu.Lock()
	var paths []string
	if rest, ok := strings.CutPrefix(prefix, ".trash/"); ok {
		for p := range m.trashed {
			if strings.HasPrefix(p, rest) {
				paths = append(paths, ".trash/"+p)
			}
		}
	} else {
		for p := range m.files {
			if strings.HasPrefix(p, prefix) {
				paths = append(paths, p)
			}
		}
	}
	m.pruned = append(m.pruned, "list "+prefix)
	m.mu.Unlock()
	slices.Sort(paths)
	for _, p := range paths {
		if err := fn(cdccleaner.File{Path: p}); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStorage) PruneDirs(ctx context.Context, prefix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruned = append(m.pruned, "prune "+prefix)
	return nil
}

// derivedRemoval is a removal batch of parent with its derived paths.
func derivedRemoval(lsn cdccleaner.LSN, parent string, derived ...string) *batch {
	b := removal(lsn, parent)
	for _, d := range derived {
		c := b.cands[0]
		c.Path, c.Parent, c.Prefix = d, parent, strings.HasSuffix(d, "/")
		b.cands = append(b.cands, c)
	}
	return b
}

// derivedReference is a reference batch of parent with its derived paths.
func derivedReference(lsn cdccleaner.LSN, parent string, derived ...string) *batch {
	b := reference(lsn, parent)
	for _, d := range derived {
		c := b.refs[0]
		c.Path, c.Parent, c.Prefix = d, parent, strings.HasSuffix(d, "/")
		b.refs = append(b.refs, c)
	}
	return b
}

const (
	blob     = "ab/cd/abcdef"
	variants = "va/ri/variants/abcdef/"
	preview  = "previews/abcdef.png"
)

func blobFiles() []string {
	return []string{blob, variants + "v1", variants + "v2", preview, "va/ri/variants/abcdeg/other", "ab/cd/abcdeg"}
}

// TestDerivedGoWithTheirParent: a removed path takes its derived file and
// every file below its derived prefix to the trash, each journaled, and
// the prefix's directories are pruned; nothing else is touched.
func TestDerivedGoWithTheirParent(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, blobFiles()...))
	w.settle(t, derivedRemoval(100, blob, variants, preview, "previews/never-made.png"))
	for _, p := range []string{blob, variants + "v1", variants + "v2", preview} {
		if w.storage.has(p) {
			t.Errorf("%s still in place", p)
		}
		if ev := w.journal.events(p); !slices.Equal(ev, []string{cdccleaner.JournalTrashed}) {
			t.Errorf("%s journaled %q, want trashed", p, ev)
		}
	}
	for _, p := range []string{"va/ri/variants/abcdeg/other", "ab/cd/abcdeg"} {
		if !w.storage.has(p) {
			t.Errorf("%s was removed; it is no derived file of %s", p, blob)
		}
	}
	if !slices.Contains(w.storage.pruned, "prune "+variants) {
		t.Errorf("storage calls %q: the prefix was not pruned", w.storage.pruned)
	}
	// The derived file that never existed does not count as an absent
	// candidate (promise 8's "mostly absent" warning is about rows).
	if got := testutil.ToFloat64(w.p.cfg.Metrics.Absent.WithLabelValues("media")); got != 0 {
		t.Errorf("absent_total %v, want 0", got)
	}
	if got := testutil.ToFloat64(w.p.cfg.Metrics.Deleted.WithLabelValues("media")); got != 4 {
		t.Errorf("deleted_total %v, want 4 (the blob, a preview, two variants)", got)
	}
}

// TestDerivedKeptWhileTheParentIsReferenced: a derived path is never
// removed while the path it derives from is referenced, even when the
// parent's candidate is in another batch (or is no candidate at all: a
// row still holds it); a derived file referenced itself stays too.
func TestDerivedKeptWhileTheParentIsReferenced(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, blobFiles()...), blob)
	b := derivedRemoval(100, blob, variants, preview)
	b.cands = b.cands[1:] // the parent's candidate is elsewhere
	w.settle(t, b)
	for _, p := range blobFiles() {
		if !w.storage.has(p) {
			t.Errorf("%s was removed while %s is referenced", p, blob)
		}
	}
	if slices.ContainsFunc(w.storage.pruned, func(s string) bool { return strings.HasPrefix(s, "list ") }) {
		t.Errorf("the prefix of a referenced path was listed: %q", w.storage.pruned)
	}

	w = newReviveWorld(t, newMemStorage(true, blobFiles()...), preview)
	w.settle(t, derivedRemoval(100, blob, preview))
	if w.storage.has(blob) || !w.storage.has(preview) {
		t.Errorf("blob in place %v, referenced preview in place %v; want the blob gone and the preview kept", w.storage.has(blob), w.storage.has(preview))
	}
}

// TestDerivedComeBackWithTheirParent: a removed path referenced again
// brings its derived file and the files of its derived prefix back from
// the trash; a derived file that never existed is nobody's dangling
// reference.
func TestDerivedComeBackWithTheirParent(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, blobFiles()...))
	w.settle(t, derivedRemoval(100, blob, variants, preview, "previews/never-made.png"))
	w.revive(t, derivedReference(200, blob, variants, preview, "previews/never-made.png"))
	for _, p := range blobFiles() {
		if !w.storage.has(p) {
			t.Errorf("%s did not come back", p)
		}
	}
	restored, dangling := w.counts()
	if restored != 4 || dangling != 0 {
		t.Errorf("restored %v, dangling %v; want 4 and 0", restored, dangling)
	}
	if len(w.rec.recorded) != 0 {
		t.Errorf("recorded failures %+v; want none", w.rec.recorded)
	}

	// Referenced again, but no longer referenced by the time it is handled
	// (removed again): nothing comes back, derived files neither.
	w = newReviveWorld(t, newMemStorage(true, blobFiles()...))
	w.settle(t, derivedRemoval(100, blob, variants, preview))
	if err := w.p.revive(t.Context(), derivedReference(200, blob, variants, preview)); err != nil {
		t.Fatal(err)
	}
	if w.storage.has(blob) || w.storage.has(preview) || w.storage.has(variants+"v1") {
		t.Error("files came back for a path no row references now")
	}
}

// TestDerivedFileEndingInSlashIsNoPrefix: a derived file template
// ("thumbs/{key}") rendered from a value ending in "/" names no file; it
// is never taken for a prefix of everything below it.
func TestDerivedFileEndingInSlashIsNoPrefix(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "thumbs/uploads/a.jpg", "uploads/"))
	b := removal(100, "uploads")
	c := b.cands[0]
	c.Path, c.Parent = "thumbs/uploads/", "uploads" // Prefix false: a file template
	b.cands = append(b.cands, c)
	w.settle(t, b)
	if !w.storage.has("thumbs/uploads/a.jpg") {
		t.Error("a file below a derived file's path was removed")
	}
	if slices.ContainsFunc(w.storage.pruned, func(s string) bool { return strings.HasPrefix(s, "list ") }) {
		t.Errorf("storage calls %q: a derived file was listed as a prefix", w.storage.pruned)
	}
	if len(w.rec.recorded) != 1 || w.rec.recorded[0].Path != "thumbs/uploads/" {
		t.Errorf("recorded %+v; want the derived path recorded as failed", w.rec.recorded)
	}
}

// TestDerivedNeverInTheTrashNorKept: a derived prefix or file that lies
// in the trash is never removed (a row's value would otherwise empty the
// undo window of every other removal); a file below a derived prefix that
// matches a keep pattern stays, and so does everything derived from a
// kept path.
func TestDerivedNeverInTheTrashNorKept(t *testing.T) {
	st := newMemStorage(true, "album/.trash-not/x")
	st.trashed["precious.jpg"] = "content"
	w := newReviveWorld(t, st)
	w.settle(t, derivedRemoval(100, "album", ".trash/", ".trash/precious.jpg"))
	if _, ok := st.trashed["precious.jpg"]; !ok {
		t.Fatal("a trashed file was removed through a derived path in the trash")
	}
	if len(w.rec.recorded) != 2 {
		t.Errorf("recorded %+v; want both derived paths in the trash recorded as failed", w.rec.recorded)
	}

	st = newMemStorage(true, blobFiles()...)
	st.files[variants+"keep-me.png"] = "k"
	st.files["defaults/avatar.png"] = "d"
	st.files["va/ri/variants/defaults/avatar.png/v"] = "v"
	w = newReviveWorld(t, st)
	w.p.cfg.Keep = map[string][]string{"media": {"va/ri/variants/*/keep-me.png", "defaults/**"}}
	w.settle(t, derivedRemoval(100, blob, variants))
	w.settle(t, derivedRemoval(101, "defaults/avatar.png", "va/ri/variants/defaults/avatar.png/"))
	for _, p := range []string{variants + "keep-me.png", "defaults/avatar.png", "va/ri/variants/defaults/avatar.png/v"} {
		if !st.has(p) {
			t.Errorf("%s was removed; a keep pattern covers it or the path it derives from", p)
		}
	}
	if st.has(variants + "v1") {
		t.Errorf("%s stayed; no keep pattern covers it", variants+"v1")
	}
}

// TestDerivedPrefixRestoresOnlyWhatWentWithIt: a file below a derived
// prefix that was removed for a reason of its own (scan, another entry's
// row) does not come back when the prefix's parent does.
func TestDerivedPrefixRestoresOnlyWhatWentWithIt(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, blobFiles()...))
	// v2 removed on its own first, journaled as scan journals.
	w.settle(t, removal(50, variants+"v2"))
	w.settle(t, derivedRemoval(100, blob, variants))
	w.revive(t, derivedReference(200, blob, variants))
	if !w.storage.has(blob) || !w.storage.has(variants+"v1") {
		t.Error("the blob or the variant that went with it did not come back")
	}
	if w.storage.has(variants + "v2") {
		t.Error("a file removed on its own came back with the prefix")
	}
}

// TestOrderOfDerivedPrefixes: a derived prefix holds every path below it.
// A re-reference of a file below a prefix being removed waits for that
// removal, a removal of a prefix waits for re-references below it sent
// before, and a re-reference of a prefix (its files coming back) waits
// for removals of files below it; other paths wait for nothing.
func TestOrderOfDerivedPrefixes(t *testing.T) {
	o := newOrder()
	enter := func(b *batch) *batch {
		b.left = make(chan struct{})
		o.enter(b)
		return b
	}
	refBelow := enter(reference(90, variants+"old"))
	prefixGone := enter(derivedRemoval(100, blob, variants))
	below := enter(reference(110, variants+"v1"))
	elsewhere := enter(reference(120, "va/ri/variants/other/v1"))
	fileRemoval := enter(removal(130, variants+"v2"))
	prefixBack := enter(derivedReference(140, blob, variants))
	if len(refBelow.after) != 0 || len(elsewhere.after) != 0 {
		t.Errorf("unrelated batches wait: %d, %d", len(refBelow.after), len(elsewhere.after))
	}
	if !set(prefixGone.after)[refBelow] {
		t.Error("removing a prefix does not wait for a re-reference below it sent before")
	}
	if !set(below.after)[prefixGone] {
		t.Error("a re-reference below a prefix does not wait for the prefix's removal")
	}
	if !set(prefixBack.after)[fileRemoval] || !set(prefixBack.after)[prefixGone] {
		t.Error("a prefix coming back does not wait for removals of it and below it")
	}
	for _, b := range []*batch{refBelow, prefixGone, below, elsewhere, fileRemoval, prefixBack} {
		o.leave(b)
	}
	if len(o.removals)+len(o.refs) != 0 || o.prefixes != 0 {
		t.Errorf("left behind: %d removals, %d refs, %d prefixes", len(o.removals), len(o.refs), o.prefixes)
	}
}

// TestDerivedPrefixPermissionDenied: a file below a derived prefix that
// the storage keeps refusing for permission fails for good after
// PermissionPatience, as a path of a batch does, recorded under its own
// path (before, the whole prefix was recorded, naming no file).
func TestDerivedPrefixPermissionDenied(t *testing.T) {
	st := newMemStorage(true, blobFiles()...)
	st.denied = map[string]bool{variants + "v2": true}
	w := newReviveWorld(t, st)
	w.p.cfg.PermissionPatience = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.p.settle(ctx, derivedRemoval(100, blob, variants)); err != nil {
		t.Fatalf("settle: %v (a refused file below the prefix held it)", err)
	}
	if len(w.rec.recorded) != 1 || w.rec.recorded[0].Path != variants+"v2" || w.rec.recorded[0].Reason != cdccleaner.ReasonPermissionDenied {
		t.Errorf("recorded %+v; want %s failed with %s", w.rec.recorded, variants+"v2", cdccleaner.ReasonPermissionDenied)
	}
	if st.has(variants+"v1") || st.has(blob) {
		t.Error("the files that could be removed were not")
	}
}

package pipeline

import (
	"context"
	"slices"
	"testing"
)

// TestSettleKeep: a path matching a keep pattern is counted as kept and
// never reaches the reference check or the storage.
func TestSettleKeep(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.p.cfg.Keep = map[string][]string{"media": {"defaults/*"}}
	if err := w.p.settle(context.Background(), mediaBatch(1, "defaults/avatar.png", "photos/a.jpg")); err != nil {
		t.Fatal(err)
	}
	for _, call := range w.refs.callsCopy() {
		if slices.Contains(call, "defaults/avatar.png") {
			t.Fatalf("kept path was reference-checked: %v", call)
		}
	}
	if n := w.storage.attemptsCopy()["defaults/avatar.png"]; n != 0 {
		t.Fatalf("kept path passed to Delete %d times", n)
	}
	if c := readCounters(w.p); c.kept != 1 || c.deleted != 1 {
		t.Fatalf("counters %+v, want 1 kept and 1 deleted", c)
	}
}

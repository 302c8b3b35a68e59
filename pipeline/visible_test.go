package pipeline

import (
	"testing"
)

// TestVisibleAskedOncePerTransaction: the batches of one big transaction
// ask whether it is visible once; a transaction not yet visible is asked
// again.
func TestVisibleAskedOncePerTransaction(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.refs.invisible = 1 // the first answer is "not yet"
	for range 3 {
		if err := w.p.settle(t.Context(), mediaBatch(1, "a.jpg")); err != nil {
			t.Fatal(err)
		}
	}
	w.refs.mu.Lock()
	asked := w.refs.visibleSeen
	w.refs.mu.Unlock()
	if asked != 2 {
		t.Fatalf("Visible asked %d times for one transaction over three batches, want 2 (not yet, then visible)", asked)
	}
}

func TestVisibleSetForgetsTheOldest(t *testing.T) {
	var v visibleSet
	for x := range uint32(visibleSetSize + 10) {
		v.add([]uint32{x})
	}
	if v.has(0) || v.has(9) || !v.has(10) || !v.has(visibleSetSize+9) {
		t.Fatal("the set does not keep exactly the newest IDs")
	}
	if len(v.ids) != visibleSetSize || len(v.order) != visibleSetSize {
		t.Fatalf("holds %d IDs (%d in order), want %d", len(v.ids), len(v.order), visibleSetSize)
	}
}

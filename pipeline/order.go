package pipeline

import (
	"context"
	"sync"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// order keeps removals and re-references of one path in the order the
// decoder sent them, while batches of different paths settle in parallel.
//
// Promise 7 needs it both ways. A re-reference must see the journal entry
// of every earlier removal of its path, so it waits for removal batches
// sent before it that hold the path (the removal may still be checking
// references, deleting or journaling). A removal sent after a
// re-reference must see that re-reference in its reference check, so it
// waits for the re-reference batch, which ends only once its transactions
// are visible; and the decoder sends a storage's pending re-references
// before each of its removal batches, so that every re-reference decoded
// before a removal is sent, and so waited for, before it (a transaction
// streamed before another is not always visible before it). Two removals
// of one path need no order (the second finds the file absent), nor do two
// re-references.
//
// A batch only ever waits for batches sent before it, which workers took
// from the queue before it: the oldest running batch waits for nothing,
// so there is no deadlock.
type order struct {
	mu       sync.Mutex
	removals map[cdccleaner.Ref]holders // paths of removal batches in flight
	refs     map[cdccleaner.Ref]holders // paths of re-reference batches in flight
}

// holders are the batches in flight that hold one path, oldest first.
// Almost always there is one, which needs no slice.
type holders struct {
	first *batch
	more  []*batch
}

func newOrder() *order {
	return &order{removals: map[cdccleaner.Ref]holders{}, refs: map[cdccleaner.Ref]holders{}}
}

// enter registers b's paths. It is called in the order batches are sent,
// before a worker can see b, and sets b.after to the batches b must wait
// for.
func (o *order) enter(b *batch) {
	mine, theirs := o.removals, o.refs
	if b.isRefs() {
		mine, theirs = o.refs, o.removals
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var deps map[*batch]bool
	for _, c := range b.items() {
		if len(theirs) > 0 {
			if h, ok := theirs[c.Ref]; ok {
				if deps == nil {
					deps = map[*batch]bool{}
				}
				deps[h.first] = true
				for _, d := range h.more {
					deps[d] = true
				}
			}
		}
		h, ok := mine[c.Ref]
		switch {
		case !ok:
			mine[c.Ref] = holders{first: b}
		case h.first == b || len(h.more) > 0 && h.more[len(h.more)-1] == b:
			// A path twice in one batch.
		default:
			h.more = append(h.more, b)
			mine[c.Ref] = h
		}
	}
	for d := range deps {
		b.after = append(b.after, d)
	}
}

// wait returns once every batch b must wait for has left, or with ctx's
// error.
func (o *order) wait(ctx context.Context, b *batch) error {
	for _, d := range b.after {
		select {
		case <-d.left:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.after = nil
	return nil
}

// leave unregisters b's paths and wakes the batches waiting for it. A
// batch abandoned unsettled (the session ends) leaves too: what waits for
// it is abandoned with it.
func (o *order) leave(b *batch) {
	mine := o.removals
	if b.isRefs() {
		mine = o.refs
	}
	o.mu.Lock()
	for _, c := range b.items() {
		h, ok := mine[c.Ref]
		if !ok {
			continue
		}
		switch {
		case h.first == b && len(h.more) == 0:
			delete(mine, c.Ref)
		case h.first == b:
			h.first, h.more = h.more[0], h.more[1:]
			if len(h.more) == 0 {
				h.more = nil
			}
			mine[c.Ref] = h
		default:
			for i, d := range h.more {
				if d == b {
					h.more = append(h.more[:i:i], h.more[i+1:]...)
					break
				}
			}
			mine[c.Ref] = h
		}
	}
	o.mu.Unlock()
	if b.left != nil { // nil for a batch that was never entered (tests)
		close(b.left)
	}
}

package pipeline

import (
	"context"
	"slices"
	"strings"
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
// A derived prefix ("va/ri/variants/k/", removed or brought back with the
// path it derives from) holds every path below it: a removal of the
// prefix and a re-reference of a file below it (or the other way round)
// are ordered as two batches of one path are.
//
// A batch only ever waits for batches sent before it, which workers took
// from the queue before it: the oldest running batch waits for nothing,
// so there is no deadlock.
type order struct {
	mu       sync.Mutex
	removals map[cdccleaner.Ref]holders // paths of removal batches in flight
	refs     map[cdccleaner.Ref]holders // paths of re-reference batches in flight
	prefixes int                        // derived prefixes among them
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
	depend := func(h holders) {
		if deps == nil {
			deps = map[*batch]bool{}
		}
		deps[h.first] = true
		for _, d := range h.more {
			deps[d] = true
		}
	}
	for _, c := range b.items() {
		if len(theirs) > 0 {
			if h, ok := theirs[c.Ref]; ok {
				depend(h)
			}
			if o.prefixes > 0 || c.IsPrefix() {
				o.overlapping(theirs, c, depend)
			}
		}
		h, ok := mine[c.Ref]
		switch {
		case !ok:
			mine[c.Ref] = holders{first: b}
		case h.first == b || len(h.more) > 0 && h.more[len(h.more)-1] == b:
			continue // a path twice in one batch
		default:
			h.more = append(h.more, b)
			mine[c.Ref] = h
		}
		if isPrefix(c.Ref) {
			o.prefixes++
		}
	}
	for d := range deps {
		b.after = append(b.after, d)
	}
}

// overlapping calls depend with the holders in theirs of every prefix
// above c's path, and, when c is a prefix, of every path below it.
func (o *order) overlapping(theirs map[cdccleaner.Ref]holders, c cdccleaner.Candidate, depend func(holders)) {
	for i := 0; i < len(c.Path)-1; i++ {
		if c.Path[i] == '/' {
			if h, ok := theirs[cdccleaner.Ref{Storage: c.Storage, Path: c.Path[:i+1]}]; ok {
				depend(h)
			}
		}
	}
	if !c.IsPrefix() {
		return
	}
	for r, h := range theirs {
		if r.Storage == c.Storage && r != c.Ref && strings.HasPrefix(r.Path, c.Path) {
			depend(h)
		}
	}
}

// isPrefix reports whether r names a derived prefix: no path of a file
// ends in "/".
func isPrefix(r cdccleaner.Ref) bool { return strings.HasSuffix(r.Path, "/") }

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
		if isPrefix(c.Ref) && (h.first == b || slices.Contains(h.more, b)) {
			o.prefixes--
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

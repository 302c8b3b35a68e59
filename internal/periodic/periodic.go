// Package periodic runs background work on a schedule: the lag monitor,
// the schema watch and the trash purger each call a function now and then
// until their context ends.
package periodic

import (
	"context"
	"time"
)

// Run calls fn first after delay first, and then again interval after each
// call returns, until ctx ends; it then returns. A call in progress is not
// interrupted other than through the ctx it is given.
func Run(ctx context.Context, first, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return // both were ready
		}
		fn(ctx)
		t.Reset(interval)
	}
}

// Throttle lets a repeated message through at most once per interval.
// The zero value with an interval set is ready; it is not safe for
// concurrent use.
type Throttle struct {
	Every time.Duration
	last  time.Time
}

// Reset lets the next message through.
func (t *Throttle) Reset() { t.last = time.Time{} }

// Allow reports whether the message may go out now, and if so notes that
// it did.
func (t *Throttle) Allow() bool {
	if now := time.Now(); t.last.IsZero() || now.Sub(t.last) > t.Every {
		t.last = now
		return true
	}
	return false
}

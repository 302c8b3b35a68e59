package pipeline

import (
	"context"
	"time"
)

// persist calls fn until it returns nil, logging each failure with msg
// and waiting with capped backoff between attempts; it returns ctx's error
// once ctx ends, and nil once fn succeeded. What the database or a
// storage failed to do transiently is retried without limit, holding the
// LSN: nothing is settled that is not done.
func (p *Pipeline) persist(ctx context.Context, msg string, fn func() error) error {
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn().Err(err).Dur("retry_in", retry.Next()).Msg(msg)
		if !retry.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// backoff paces the retries of transient trouble: each Wait sleeps for the
// current delay and then doubles it, up to max. Every retry loop of the
// pipeline (the stream, a type lookup, the reference check and the
// storage, recording failures, waiting for visibility) uses one.
type backoff struct {
	next, min, max time.Duration
}

// newBackoff returns a backoff whose first Wait sleeps min.
func newBackoff(min, max time.Duration) *backoff {
	return &backoff{next: min, min: min, max: max}
}

// Next is how long the next Wait sleeps, for the "retry_in" of a log line.
func (b *backoff) Next() time.Duration { return b.next }

// Wait sleeps for Next, or until ctx ends (then it returns false), and
// doubles the delay for the following Wait, up to max.
func (b *backoff) Wait(ctx context.Context) bool {
	if !sleep(ctx, b.next) {
		return false
	}
	b.next = min(b.next*2, b.max)
	return true
}

// AtLeast raises the next delay to d if it is shorter (even above max,
// for this once).
func (b *backoff) AtLeast(d time.Duration) { b.next = max(b.next, d) }

// Reset makes the next Wait sleep min again.
func (b *backoff) Reset() { b.next = b.min }

// Capped reports whether the delay has reached max.
func (b *backoff) Capped() bool { return b.next >= b.max }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

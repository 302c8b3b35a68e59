package periodic

import (
	"context"
	"testing"
	"time"
)

func TestRunCallsUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	Run(ctx, 0, time.Microsecond, func(ctx context.Context) {
		calls++
		if calls == 3 {
			cancel()
		}
	})
	if calls != 3 {
		t.Fatalf("%d calls, want 3", calls)
	}
	// An ended context: no call at all.
	Run(ctx, 0, time.Microsecond, func(context.Context) { t.Fatal("called after the context ended") })
}

func TestThrottle(t *testing.T) {
	th := Throttle{Every: time.Hour}
	if !th.Allow() {
		t.Fatal("first message held back")
	}
	if th.Allow() {
		t.Fatal("second message within the interval let through")
	}
	th.Reset()
	if !th.Allow() {
		t.Fatal("message after Reset held back")
	}
	th = Throttle{Every: 0}
	th.Allow()
	time.Sleep(time.Millisecond)
	if !th.Allow() {
		t.Fatal("message after the interval held back")
	}
}

package deleter_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

type fakeTrasher struct {
	mu      sync.Mutex
	cutoffs []time.Time
	stop    func()
}

func (f *fakeTrasher) PurgeTrash(ctx context.Context, cutoff time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutoffs = append(f.cutoffs, cutoff)
	if len(f.cutoffs) == 3 {
		f.stop()
	}
	if len(f.cutoffs) == 1 {
		return 0, errors.New("bucket unreachable") // logged, retried at the next round
	}
	return 1, nil
}

// TestRunPurger: the trash is purged at once and then every interval, of
// what is older than the retention, until the context ends; an error does
// not stop it.
func TestRunPurger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeTrasher{stop: cancel}
	start := time.Now()
	if err := deleter.RunPurger(ctx, f, time.Hour, time.Millisecond, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if len(f.cutoffs) != 3 {
		t.Fatalf("%d purges, want 3", len(f.cutoffs))
	}
	for _, c := range f.cutoffs {
		if age := start.Sub(c); age < time.Hour-time.Second || age > time.Hour+time.Minute {
			t.Errorf("cutoff %s before start, want the retention (1h)", age)
		}
	}
}

package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Standbys waits until the physical standbys that a failover may promote
// have the journal's newest entries. Journal entries are rows: a standby
// has one once it received the WAL that wrote it. A removal whose entry
// the promoted standby lacks is a file in the trash that no journal knows
// of, so a row referencing its path again would not bring it back
// (promise 7). The standbys are those of synchronized_standby_slots
// (PostgreSQL 17 and later), which make the primary send the cleaner only
// what they received: with it, the entry reaches them before the file
// moves, as the change reached them before the cleaner saw it.
type Standbys struct {
	pool *pgxpool.Pool
}

// NewStandbys returns a Standbys on pool.
func NewStandbys(pool *pgxpool.Pool) *Standbys { return &Standbys{pool: pool} }

// Names returns the slots of synchronized_standby_slots, or none (also
// before PostgreSQL 17, which has no such setting).
func (s *Standbys) Names(ctx context.Context) ([]string, error) {
	var names []string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(trim(n)), '{}') FROM unnest(string_to_array(coalesce(current_setting('synchronized_standby_slots', true), ''), ',')) AS n WHERE trim(n) <> ''`).Scan(&names)
	if err != nil {
		return nil, fmt.Errorf("read synchronized_standby_slots: %w", err)
	}
	return names, nil
}

// WaitFlushed waits until every physical slot of names has received
// (restart_lsn, which the standby's feedback moves) the WAL flushed so
// far, so everything committed before the call. A missing or inactive
// slot is waited for, as PostgreSQL's own walsender waits for it: warn
// says so, once a while.
func (s *Standbys) WaitFlushed(ctx context.Context, names []string, warn func(waited time.Duration)) error {
	if len(names) == 0 {
		return nil
	}
	var lsn string
	if err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		return fmt.Errorf("read the flushed WAL position: %w", err)
	}
	start := time.Now()
	pause, warned := time.Millisecond, time.Duration(0)
	for {
		var received int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1) AND slot_type = 'physical' AND restart_lsn >= $2::pg_lsn`, names, lsn).Scan(&received)
		if err != nil {
			return fmt.Errorf("check that standbys %v received %s: %w", names, lsn, err)
		}
		if received == len(names) {
			return nil
		}
		if waited := time.Since(start); waited-warned >= 10*time.Second {
			warn(waited)
			warned = waited
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

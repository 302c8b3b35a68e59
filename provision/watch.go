package provision

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/internal/periodic"
)

// SchemaWatch checks, every Interval, that the database still fits the
// configuration, as check does (Inspect), while run streams. A schema
// change can stop changes from reaching the cleaner without anything in
// the stream to show it: a watched table dropped and recreated leaves the
// publication, a replica identity set back to DEFAULT drops old values, a
// partition created later lacks REPLICA IDENTITY FULL. Each problem is
// logged (again every 10 minutes while it lasts) and handed to Report.
type SchemaWatch struct {
	Pool   *pgxpool.Pool
	Config *config.Config
	// Start are the columns as Inspect found them when the cleaner
	// started: a configured name that now names another column (dropped
	// and added again, or names swapped) is a problem too.
	Start    []cdccleaner.Column
	Interval time.Duration
	// Report receives the problems of each check (none once they are
	// fixed).
	Report func(problems []Finding)
	Log    zerolog.Logger
}

// schemaWarnEvery is how often a problem that lasts is logged again.
const schemaWarnEvery = 10 * time.Minute

// Run checks until ctx ends; it then returns nil. A check that cannot ask
// the database is logged (at most once a minute) and retried.
func (w *SchemaWatch) Run(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	errs := periodic.Throttle{Every: time.Minute}
	var lastWarn time.Time
	var last []string
	periodic.Run(ctx, interval, interval, func(ctx context.Context) {
		problems, err := w.check(ctx)
		if err != nil {
			if ctx.Err() == nil && errs.Allow() {
				w.Log.Warn().Err(err).Msg("check the database against the configuration")
			}
			return
		}
		w.Report(problems)
		now := make([]string, len(problems))
		for i, p := range problems {
			now[i] = p.String()
		}
		switch {
		case len(now) == 0 && len(last) > 0:
			w.Log.Info().Msg("the database fits the configuration again")
		case len(now) > 0 && (!slices.Equal(now, last) || time.Since(lastWarn) > schemaWarnEvery):
			w.Log.Error().Strs("problems", now).
				Msg("the database no longer fits the configuration: " + strings.Join(now, "; ") +
					". Changes it keeps from the cleaner are not cleaned: fix what cdc-cleaner check reports (often: run cdc-cleaner setup), then run cdc-cleaner scan for files orphaned meanwhile")
			lastWarn = time.Now()
		}
		last = now
	})
	return nil
}

func (w *SchemaWatch) check(ctx context.Context) ([]Finding, error) {
	conn, err := w.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	r, err := Inspect(ctx, conn.Conn(), w.Config)
	if err != nil {
		return nil, err
	}
	return append(r.Problems(), movedColumns(w.Start, r.Columns)...), nil
}

// movedColumns reports the configured columns whose name now names another
// column of the catalog than when the cleaner started (start): the
// decoder reads by name, so it reads the new one, while the files the old
// one referenced are no longer watched.
func movedColumns(start, now []cdccleaner.Column) []Finding {
	var out []Finding
	for _, s := range start {
		for _, n := range now {
			if n.Storage != s.Storage || n.Schema != s.Schema || n.Table != s.Table || n.Name != s.Name || n.Protect != s.Protect {
				continue
			}
			if n.TableOID != s.TableOID || n.AttNum != s.AttNum {
				out = append(out, Finding{Severity: Problem, Code: CodeGeneral, Message: fmt.Sprintf(
					"column %q of %s.%s is not the column it was when the cleaner started (dropped and added again, its table recreated, or names swapped): restart the cleaner, and run cdc-cleaner scan for the files the former column referenced",
					s.Name, s.Schema, s.Table)})
			}
		}
	}
	return out
}

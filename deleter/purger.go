package deleter

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/internal/periodic"
)

// RunPurger purges t's trash of files older than retention, at start and
// then every interval, until ctx ends (it then returns nil). Errors are
// logged and retried at the next round.
func RunPurger(ctx context.Context, t cdccleaner.Trasher, retention, interval time.Duration, log zerolog.Logger) error {
	periodic.Run(ctx, 0, interval, func(ctx context.Context) {
		n, err := t.PurgeTrash(ctx, time.Now().Add(-retention))
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn().Err(err).Msg("purge trash")
		case n > 0:
			log.Info().Int("purged", n).Dur("retention", retention).Msg("purged trashed files past their retention")
		}
	})
	return nil
}

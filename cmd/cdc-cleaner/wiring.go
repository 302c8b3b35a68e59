package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/pipeline"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// connect opens one ordinary connection for administration and checks.
func connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	return connectNotices(ctx, cfg, nil)
}

// connectNotices is connect, with the server's warnings handed to warn.
func connectNotices(ctx context.Context, cfg *config.Config, warn func(msg string)) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := pgx.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres.url: %w", err)
	}
	if warn != nil {
		pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			if n.Severity == "WARNING" {
				warn(n.Message)
			}
		}
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", config.RedactURL(cfg.Postgres.URL), err)
	}
	return conn, nil
}

// inspect checks the database against cfg on a connection of its own
// (provision.Inspect), the values of the columns too when spellings is set
// (provision.InspectSpellings).
func inspect(ctx context.Context, cfg *config.Config, spellings bool) (*provision.Report, error) {
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	report, err := provision.Inspect(ctx, conn, cfg)
	if err != nil {
		return nil, err
	}
	if spellings {
		provision.InspectSpellings(ctx, conn, cfg, report, provision.SpellingTimeout)
	}
	return report, nil
}

// openPool opens a pool of at most maxConns connections to the database,
// named application (unless the URL names one). Each new connection runs
// SET for the session settings params, except those the URL sets itself
// (its query or its options); a SET that fails is let be, since they only
// make the cleaner lighter. They are not startup parameters, which
// connection poolers such as PgBouncer refuse unless told to ignore them.
// pgxpool connects lazily: an error here is one of the configuration.
func openPool(ctx context.Context, cfg *config.Config, maxConns int32, application string, params map[string]string) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres.url: %w", err)
	}
	poolCfg.MaxConns = maxConns
	rp := poolCfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = application
	}
	var sets []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if !replication.URLSets(rp, k) {
			sets = append(sets, fmt.Sprintf("SET %s = %s", k, params[k]))
		}
	}
	if len(sets) > 0 {
		poolCfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			for _, q := range sets {
				conn.Exec(ctx, q)
			}
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres.url: %w", err)
	}
	return pool, nil
}

// runSessionParams are the session settings of run's pool. Its queries
// (reference checks of a batch, journal writes, visibility checks) are
// small and many: a parallel plan, which the planner picks for a
// reference check on a table without statistics, forks two worker
// processes per query, costs more than the query itself (make bench: the
// big-transaction drain took 3.1 s with it, 2.2 s without) and takes
// workers from the application's max_parallel_workers.
var runSessionParams = map[string]string{"max_parallel_workers_per_gather": "0"}

// missingExplainer says what became of a watched column a Relation
// message lacks (catalog.MissingColumnHint), for the columns Inspect
// found at start.
func missingExplainer(pool *pgxpool.Pool, cols []cdccleaner.Column) func(ctx context.Context, schema, table, column string) string {
	return func(ctx context.Context, schema, table, column string) string {
		for _, c := range cols {
			if !c.Protect && c.Schema == schema && c.Table == table && c.Name == column {
				return catalog.MissingColumnHint(ctx, pool, c)
			}
		}
		return ""
	}
}

// typeResolver looks up a type the decoder meets while running (a watched
// column retyped) in the catalog.
func typeResolver(pool *pgxpool.Pool) func(ctx context.Context, oid uint32) (cdccleaner.ColumnType, bool, error) {
	return func(ctx context.Context, oid uint32) (cdccleaner.ColumnType, bool, error) {
		kinds, err := catalog.TypeKinds(ctx, pool, []uint32{oid})
		if err != nil {
			return cdccleaner.ColumnType{}, false, err
		}
		k, ok := kinds[oid]
		return k, ok, nil
	}
}

// openStorages opens every configured storage, each logging to log with
// its name. The caller closes them.
func openStorages(ctx context.Context, cfg *config.Config, log zerolog.Logger) (map[string]cdccleaner.Storage, func(), error) {
	out := map[string]cdccleaner.Storage{}
	endpoints := map[string]string{} // s3 storage -> endpoint its client resolved
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for name, s := range cfg.Storages {
		switch s.Type {
		case config.StorageLocal:
			l, err := local.New(s.Root, local.Options{PruneEmptyDirs: s.PruneEmptyDirs, Trash: s.Trash, TrashPrefix: s.TrashPrefix})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("storages.%s.root: %w", name, err)
			}
			closers = append(closers, l.Close)
			out[name] = l
		case config.StorageS3:
			st, err := s3.New(ctx, s3.Options{
				Bucket:      s.Bucket,
				Prefix:      s.Prefix,
				Region:      s.Region,
				Endpoint:    s.Endpoint,
				PathStyle:   s.PathStyle,
				Concurrency: s.Concurrency,
				Trash:       s.Trash,
				TrashPrefix: s.TrashPrefix,
				Log:         log.With().Str("component", "storage").Str("storage", name).Logger(),
			})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("storages.%s: %w", name, err)
			}
			endpoints[name] = ""
			if ep := st.Client().Options().BaseEndpoint; ep != nil {
				endpoints[name] = *ep
			}
			out[name] = st
		default:
			closeAll()
			return nil, nil, fmt.Errorf("storages.%s.type: %q storage is not supported by this version", name, s.Type)
		}
	}
	if err := cfg.LocalRootsOverlap(); err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := cfg.S3Overlap(endpoints); err != nil {
		closeAll()
		return nil, nil, err
	}
	return out, closeAll, nil
}

// checker is a storage that can verify it is reachable and writable.
type checker interface {
	Check(ctx context.Context) error
}

// keepPatterns maps each storage to its keep globs.
func keepPatterns(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for name, s := range cfg.Storages {
		if len(s.Keep) > 0 {
			out[name] = s.Keep
		}
	}
	return out
}

// messageStorages names the storages that honour cdc_cleaner messages.
func messageStorages(cfg *config.Config) []string {
	var out []string
	for name, s := range cfg.Storages {
		if s.Messages {
			out = append(out, name)
		}
	}
	return out
}

// trashSettings are, per storage with trash on, its trash prefix and
// retention (the undo window).
func trashSettings(cfg *config.Config) map[string]pipeline.Trash {
	out := map[string]pipeline.Trash{}
	for name, s := range cfg.Storages {
		if s.Trash {
			out[name] = pipeline.Trash{Prefix: s.TrashPrefix, Retention: s.TrashRetention}
		}
	}
	return out
}

// purgeInterval is how often a trash is purged: often enough that files
// leave within a few percent of their retention, at most hourly.
func purgeInterval(retention time.Duration) time.Duration {
	return min(max(retention/24, time.Minute), time.Hour)
}

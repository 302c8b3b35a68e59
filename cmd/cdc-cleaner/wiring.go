package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
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

// openStorages opens every configured storage. The caller closes them.
func openStorages(ctx context.Context, cfg *config.Config) (map[string]cdccleaner.Storage, func(), error) {
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
			l, err := deleter.NewLocal(s.Root, deleter.LocalOptions{PruneEmptyDirs: s.PruneEmptyDirs, Trash: s.Trash, TrashPrefix: s.TrashPrefix})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("storages.%s.root: %w", name, err)
			}
			closers = append(closers, l.Close)
			out[name] = l
		case config.StorageS3:
			st, err := deleter.NewS3(ctx, deleter.S3Options{
				Bucket:      s.Bucket,
				Prefix:      s.Prefix,
				Region:      s.Region,
				Endpoint:    s.Endpoint,
				PathStyle:   s.PathStyle,
				Concurrency: s.Concurrency,
				Trash:       s.Trash,
				TrashPrefix: s.TrashPrefix,
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
	if err := localRootsOverlap(cfg); err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := s3Overlap(cfg, endpoints); err != nil {
		closeAll()
		return nil, nil, err
	}
	return out, closeAll, nil
}

// s3Overlap refuses two s3 storages whose prefixes in one bucket contain each
// other once their endpoints are the ones the S3 clients resolved (endpoints,
// by storage). The configuration check takes an empty endpoint for AWS; the
// AWS SDK takes AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or endpoint_url in the
// AWS config file instead, which can be a server another storage names.
// Both compare with config.S3Location.
func s3Overlap(cfg *config.Config, endpoints map[string]string) error {
	names := make([]string, 0, len(endpoints))
	for name := range endpoints {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, a := range names {
		sa := cfg.Storages[a]
		la := config.NewS3Location(endpoints[a], sa.Bucket, sa.Prefix)
		for _, b := range names[i+1:] {
			sb := cfg.Storages[b]
			if !la.Overlaps(config.NewS3Location(endpoints[b], sb.Bucket, sb.Prefix)) {
				continue
			}
			return fmt.Errorf("storages.%s.prefix: %q in bucket %q overlaps storage %q (prefix %q in bucket %q) on the endpoints the S3 client resolved, %s and %s (from endpoint, or else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or endpoint_url in the AWS config file): objects under both would be checked against only one storage's columns; use one storage, or prefixes that do not contain each other",
				b, sb.Prefix, sb.Bucket, a, sa.Prefix, sa.Bucket, showEndpoint(endpoints[a]), showEndpoint(endpoints[b]))
		}
	}
	return nil
}

func showEndpoint(e string) string {
	if e == "" {
		return "AWS's default"
	}
	return fmt.Sprintf("%q", e)
}

// localRootsOverlap refuses two local storages whose roots are the same
// directory, or one inside the other, once symlinks are resolved (the
// configuration check compares the paths as written).
func localRootsOverlap(cfg *config.Config) error {
	real := map[string]string{}
	for name, s := range cfg.Storages {
		if s.Type != config.StorageLocal {
			continue
		}
		r, err := filepath.EvalSymlinks(s.Root)
		if err != nil {
			return fmt.Errorf("storages.%s.root: %w", name, err)
		}
		real[name] = r
	}
	for a, ra := range real {
		for b, rb := range real {
			if a >= b {
				continue
			}
			if ra == rb || strings.HasPrefix(rb+"/", ra+"/") || strings.HasPrefix(ra+"/", rb+"/") {
				return fmt.Errorf("storages.%s.root and storages.%s.root are the same directory or one inside the other (%s, %s, symlinks resolved): files reachable from both would be checked against only one storage's columns; use one storage", a, b, ra, rb)
			}
		}
	}
	return nil
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

// purgeInterval is how often a trash is purged: often enough that files
// leave within a few percent of their retention, at most hourly.
func purgeInterval(retention time.Duration) time.Duration {
	return min(max(retention/24, time.Minute), time.Hour)
}

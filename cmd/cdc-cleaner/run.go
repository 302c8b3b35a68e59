package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
	"github.com/cdc-cleaner/cdc-cleaner/journal"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
	"github.com/cdc-cleaner/cdc-cleaner/metrics"
	"github.com/cdc-cleaner/cdc-cleaner/pipeline"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("run", "[--config FILE] [--dry-run]",
		`Streams committed changes from the replication slot and deletes the files
whose paths vanished from watched columns, once no watched or protect column
references them. Stops gracefully on SIGINT or SIGTERM.

Exit codes: 0 stopped, 1 runtime failure, 2 bad configuration or database not ready.`, stderr)
	dryRun := fs.Bool("dry-run", false, "decide and log as usual, but delete nothing and never confirm an LSN (same as dry_run: true)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to `FILE`, for performance work")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return configErr(err)
		}
		defer stopProfile()
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *dryRun {
		cfg.DryRun = true
	}
	log := newLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Refuse to start on a database that is not ready, with every reason.
	report, err := inspect(ctx, cfg, true)
	if err != nil {
		return configErr(err)
	}
	for _, w := range report.Warnings() {
		log.Warn().Msg(w.String())
	}
	if problems := report.Problems(); len(problems) > 0 {
		msg := "the database is not ready:"
		for _, p := range problems {
			msg += "\n  - " + p.String()
		}
		return configErr(errors.New(msg))
	}
	if unfound := report.Unfound(cfg.Columns()); len(unfound) > 0 {
		return configErr(fmt.Errorf("the database check did not describe %s: run cdc-cleaner check", strings.Join(unfound, ", ")))
	}

	storages, closeStorages, err := openStorages(ctx, cfg, log)
	if err != nil {
		return configErr(err)
	}
	defer closeStorages()

	pool, err := openPool(ctx, cfg, 8, "cdc-cleaner", runSessionParams)
	if err != nil {
		return configErr(err)
	}
	defer pool.Close()
	resolver := catalog.NewResolver(pool, report.Columns)
	refs, err := refcheck.New(pool, report.Columns, refcheck.Resolve(resolver.Resolve), refcheck.Logger(log.With().Str("component", "refcheck").Logger()))
	if err != nil {
		return configErr(err)
	}

	m := metrics.New()
	jnl := journal.New(pool)
	p, err := pipeline.New(pipeline.Config{
		Stream: replication.StreamConfig{
			URL:            cfg.Postgres.URL,
			Slot:           cfg.Postgres.Slot,
			Publication:    cfg.Postgres.Publication,
			StatusInterval: cfg.Postgres.StatusInterval,
			Logger:         log.With().Str("component", "replication").Logger(),
		},
		Columns:        report.Columns,
		ResolveType:    typeResolver(pool),
		ExplainMissing: missingExplainer(pool, report.Columns),
		Storages:       storages,
		Refs:           refcheck.WithDerived(refs, report.Columns),
		Failures:       ledger.New(pool),
		Journal:        jnl,
		Standbys:       journal.NewStandbys(pool),
		Trash:          trashSettings(cfg),
		Keep:           keepPatterns(cfg),
		Messages:       messageStorages(cfg),
		DeleteDelay:    cfg.DeleteDelay,
		Metrics:        m,
		Logger:         log,
		DryRun:         cfg.DryRun,
	})
	if err != nil {
		return configErr(err)
	}

	var ln net.Listener
	if cfg.HTTP.Listen != "" {
		ln, err = net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return configErr(fmt.Errorf("http.listen: %w (choose another address, or \"\" to disable)", err))
		}
		log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := p.Run(gctx); err != nil {
			return failure(err)
		}
		return nil
	})
	lag := &replication.LagMonitor{
		Pool:      pool,
		Slot:      cfg.Postgres.Slot,
		Interval:  cfg.Postgres.StatusInterval,
		WarnAbove: uint64(cfg.Postgres.MaxLagWarn),
		Set:       m.LagBytes.Set,
		Log:       log.With().Str("component", "lag").Logger(),
	}
	g.Go(func() error { return lag.Run(gctx) })
	watch := &provision.SchemaWatch{
		Pool:     pool,
		Config:   cfg,
		Start:    report.Columns,
		Interval: min(max(cfg.Postgres.StatusInterval, time.Second), 30*time.Second),
		Report: func(problems []provision.Finding) {
			m.SchemaProblems.Set(float64(len(problems)))
			if len(problems) == 0 {
				p.SetSchemaProblem("")
				return
			}
			p.SetSchemaProblem(problems[0].String())
		},
		Log: log.With().Str("component", "schema").Logger(),
	}
	g.Go(func() error { return watch.Run(gctx) })
	for name, st := range storages {
		s := cfg.Storages[name]
		t, ok := st.(cdccleaner.Trasher)
		if !s.Trash || !ok {
			continue
		}
		plog := log.With().Str("component", "trash").Str("storage", name).Logger()
		plog.Info().Str("trash_prefix", s.TrashPrefix).Dur("retention", s.TrashRetention).Msg("trash mode: deleted files are moved to the trash and purged after the retention")
		if cfg.DryRun {
			continue
		}
		g.Go(func() error {
			return deleter.RunPurger(gctx, t, s.TrashRetention, purgeInterval(s.TrashRetention), plog)
		})
	}
	for name, s := range cfg.Storages {
		if cfg.DryRun {
			break
		}
		// Journal entries outlive the trash by one more retention, so
		// that a path referenced again after its copy was purged is still
		// reported as a dangling reference.
		keep := 2 * s.TrashRetention
		if keep <= 0 { // trash off without a retention
			keep = 2 * config.DefaultStorage().TrashRetention
		}
		jlog := log.With().Str("component", "journal").Str("storage", name).Logger()
		g.Go(func() error {
			jnl.RunPruner(gctx, name, keep, purgeInterval(s.TrashRetention), jlog)
			return nil
		})
	}
	if ln != nil {
		srv := &http.Server{Handler: handler(m, p), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return failure(fmt.Errorf("serve http: %w", err))
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	err = g.Wait()
	if err == nil {
		log.Info().Msg("stopped")
	}
	return err
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// handler serves the metrics and the health endpoints.
func handler(m *metrics.Metrics, p *pipeline.Pipeline) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := p.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	return mux
}

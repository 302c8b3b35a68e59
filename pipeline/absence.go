package pipeline

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/internal/periodic"
)

// How run notices a wrong mapping from column values to files (promise 8):
// when a storage's root, prefix or layout does not match what the columns
// hold, every candidate is "already absent", nothing is deleted and the
// real files stay forever.
const (
	// absenceWindow is how many of a storage's most recent settled
	// outcomes (deleted or already absent) the absent share is computed
	// over: a count, not a time span, so a quiet storage keeps its last
	// verdict and memory stays fixed.
	absenceWindow = 200
	// absenceMinOutcomes is how many outcomes the window must hold before
	// the share may warn: a few absent files right after a start say
	// little.
	absenceMinOutcomes = 20
	// absenceThreshold is the absent share above which run warns.
	absenceThreshold = 0.9
	// absenceWarnEvery is the least time between two warnings about one
	// storage, also across a recovery, so a share that hovers around the
	// threshold cannot flood the log.
	absenceWarnEvery = 10 * time.Minute
)

// absenceWatch keeps, per storage, the most recent settled outcomes of
// deletions and sets cdc_cleaner_absent_ratio from them. Only Deleted and
// Absent count: a failed path says nothing about the mapping, a kept one
// never reached the storage. A dry run never asks the storage, so it
// observes nothing: the gauge stays 0 and nothing is said. It is safe for
// concurrent use by the workers.
type absenceWatch struct {
	window, minOutcomes int
	threshold           float64
	warnEvery           time.Duration
	gauge               *prometheus.GaugeVec // storage; nil: none

	mu       sync.Mutex
	storages map[string]*absenceRing
}

func newAbsenceWatch(gauge *prometheus.GaugeVec) *absenceWatch {
	return &absenceWatch{
		window: absenceWindow, minOutcomes: absenceMinOutcomes, threshold: absenceThreshold, warnEvery: absenceWarnEvery,
		gauge: gauge, storages: map[string]*absenceRing{},
	}
}

// absenceRing is one storage's window: a fixed-size ring of outcomes.
type absenceRing struct {
	absent  []bool // true: already absent; allocated once, window long
	next, n int    // where the next outcome goes; how many the ring holds
	nAbsent int    // how many of those are absent
	// example is the latest absent candidate, for the warning.
	example cdccleaner.Candidate
	// warned is set by a warning and cleared by the recovery message, so
	// that a recovery is only told after a warning, once.
	warned   bool
	throttle periodic.Throttle
}

func (r *absenceRing) push(absent bool) {
	if r.n == len(r.absent) {
		if r.absent[r.next] {
			r.nAbsent--
		}
	} else {
		r.n++
	}
	r.absent[r.next] = absent
	if absent {
		r.nAbsent++
	}
	r.next = (r.next + 1) % len(r.absent)
}

// absenceNews is what observe has to tell; the zero value tells nothing.
type absenceNews struct {
	warn, recovered  bool
	absent, outcomes int
	ratio            float64
	threshold        float64
	example          cdccleaner.Candidate
}

// observe adds one deletion round's outcomes of storage to its window:
// deleted files, then absent ones (example stands for them). It sets the
// gauge and says whether to warn (the share is above the threshold with
// enough outcomes, at most once per warnEvery) or to tell that the share
// fell back to or below the threshold after a warning.
func (a *absenceWatch) observe(storage string, deleted, absent int, example cdccleaner.Candidate) absenceNews {
	if deleted+absent == 0 {
		return absenceNews{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.storages[storage]
	if r == nil {
		r = &absenceRing{absent: make([]bool, a.window), throttle: periodic.Throttle{Every: a.warnEvery}}
		a.storages[storage] = r
	}
	if total := deleted + absent; total > a.window {
		// The round fills the whole ring: keep its share.
		deleted = int(math.Round(float64(deleted) * float64(a.window) / float64(total)))
		absent = a.window - deleted
	}
	for range deleted {
		r.push(false)
	}
	for range absent {
		r.push(true)
	}
	if absent > 0 {
		r.example = example
	}
	news := absenceNews{absent: r.nAbsent, outcomes: r.n, ratio: float64(r.nAbsent) / float64(r.n), threshold: a.threshold, example: r.example}
	if a.gauge != nil {
		a.gauge.WithLabelValues(storage).Set(news.ratio)
	}
	switch high := r.n >= a.minOutcomes && news.ratio > a.threshold; {
	case high && r.throttle.Allow():
		r.warned = true
		news.warn = true
	case !high && r.warned:
		r.warned = false
		news.recovered = true
	}
	return news
}

// percent formats a share in whole percent, rounded down, so that 199 of
// 200 is not shown as 100%.
func percent(share float64) string {
	return fmt.Sprintf("%d%%", int(math.Floor(share*100+1e-9)))
}

// tellAbsence logs what observe decided to tell about storage.
func (p *Pipeline) tellAbsence(storage string, n absenceNews) {
	switch {
	case n.warn:
		p.log.Warn().Str("storage", storage).Float64("absent_ratio", n.ratio).Int("absent", n.absent).Int("outcomes", n.outcomes).
			Str("example_path", n.example.Path).Str("example_source", n.example.Source).
			Msgf("storage %q: %d of the last %d files to delete (%s) were already absent, e.g. %q from %s. "+
				"The mapping from column values to files is probably wrong (root, prefix or layout): run cdc-cleaner check",
				storage, n.absent, n.outcomes, percent(n.ratio), n.example.Path, n.example.Source)
	case n.recovered:
		p.log.Info().Str("storage", storage).Float64("absent_ratio", n.ratio).Int("absent", n.absent).Int("outcomes", n.outcomes).
			Msgf("storage %q: %d of the last %d files to delete (%s) were already absent, no longer above %s",
				storage, n.absent, n.outcomes, percent(n.ratio), percent(n.threshold))
	}
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the cleaner's metrics on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Changes        *prometheus.CounterVec // table, op
	Candidates     *prometheus.CounterVec // storage
	Deleted        *prometheus.CounterVec // storage
	Absent         *prometheus.CounterVec // storage
	KeptReferenced *prometheus.CounterVec // storage
	Failed         *prometheus.CounterVec // storage, reason
	Truncates      *prometheus.CounterVec // table
	// AbsentRatio is, per storage, the share of already absent files
	// among the most recent deletions run settled (deleted or absent):
	// near 1 when the mapping from column values to files is wrong.
	AbsentRatio *prometheus.GaugeVec // storage
	// OldValuesMissing counts changes of watched tables that did not carry
	// the old value of a watched column (replica identity not FULL).
	OldValuesMissing *prometheus.CounterVec // table
	// Held is 1 while the stream is held at a schema change the
	// configuration does not fit.
	Held prometheus.Gauge
	// SchemaProblems is how many problems the periodic check of the
	// database against the configuration finds (what check reports).
	SchemaProblems prometheus.Gauge
	// MessagesIgnored counts cdc_cleaner logical messages ignored because
	// the storage they name (storage="" for none configured) does not
	// honour messages.
	MessagesIgnored *prometheus.CounterVec // storage
	// Restored counts removed files brought back because a committed row
	// referenced them again (promise 7); Dangling those that could not be.
	Restored *prometheus.CounterVec // storage
	Dangling *prometheus.CounterVec // storage
	// NewReferences counts paths that committed changes referenced anew
	// and that were compared with the journal.
	NewReferences *prometheus.CounterVec // storage
	// Unprefixed counts values of entries with strip_prefix that start
	// with none of the prefixes: no path of the storage, never deleted.
	Unprefixed    *prometheus.CounterVec // storage
	ConfirmedLSN  prometheus.Gauge
	LagBytes      prometheus.Gauge
	Streaming     prometheus.Gauge
	DeleteLatency prometheus.Histogram
}

// New creates the metrics and registers them, with Go runtime and process
// metrics, on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_changes_total", Help: "Row changes of watched tables read from the slot.",
		}, []string{"table", "op"}),
		Candidates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_candidates_total", Help: "File references that vanished in committed transactions.",
		}, []string{"storage"}),
		Deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_deleted_total", Help: "Files deleted (or moved to trash).",
		}, []string{"storage"}),
		Absent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_absent_total", Help: "Candidates whose file was already gone.",
		}, []string{"storage"}),
		AbsentRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_cleaner_absent_ratio", Help: "Share of already absent files among the storage's most recent settled deletions (deleted or absent; 0 until there are some). Near 1: the mapping from column values to files is probably wrong; run cdc-cleaner check.",
		}, []string{"storage"}),
		KeptReferenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_kept_referenced_total", Help: "Candidates kept because a row still references them (or a keep rule matches).",
		}, []string{"storage"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_failed_total", Help: "Candidates recorded in cdc_cleaner.failed_deletions, by reason.",
		}, []string{"storage", "reason"}),
		Truncates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_truncates_total", Help: "TRUNCATEs of watched tables, whose files only `scan` can recover.",
		}, []string{"table"}),
		OldValuesMissing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_old_values_missing_total", Help: "Changes of watched tables that did not carry the old value of a watched column (replica identity not FULL); recorded in cdc_cleaner.failed_deletions as old_values_missing.",
		}, []string{"table"}),
		Held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_cleaner_held", Help: "1 while the stream is held at a schema change the configuration does not fit (a watched column renamed, dropped or retyped); the slot retains WAL until the configuration is fixed.",
		}),
		SchemaProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_cleaner_schema_problems", Help: "Problems the periodic check of the database against the configuration finds (what cdc-cleaner check reports as problems).",
		}),
		MessagesIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_messages_ignored_total", Help: "cdc_cleaner logical decoding messages ignored because the storage they name does not honour messages (storage=\"\": none configured).",
		}, []string{"storage"}),
		Restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_restored_total", Help: "Removed files brought back from the trash because a committed row referenced them again.",
		}, []string{"storage"}),
		Dangling: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_dangling_total", Help: "Removed files referenced again by a committed row that could not be restored (trash off, purged, or a storage error); recorded in cdc_cleaner.failed_deletions.",
		}, []string{"storage"}),
		NewReferences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_new_references_total", Help: "Paths that committed changes referenced anew (INSERT values, UPDATE new values), compared with the journal.",
		}, []string{"storage"}),
		Unprefixed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_cleaner_unprefixed_values_total", Help: "Values of columns with strip_prefix that start with none of the prefixes: no path of the storage, never deleted.",
		}, []string{"storage"}),
		ConfirmedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_cleaner_confirmed_lsn", Help: "The LSN up to which every change is settled, as a number.",
		}),
		LagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_cleaner_lag_bytes", Help: "WAL the slot retains, in bytes, as the server reports it.",
		}),
		Streaming: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_cleaner_streaming", Help: "1 while this instance streams from the slot (0: standby, reconnecting or stopped).",
		}),
		DeleteLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cdc_cleaner_delete_latency_seconds",
			Help:    "Time from a transaction's commit to the deletion of a file it orphaned.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Changes, m.Candidates, m.Deleted, m.Absent, m.AbsentRatio, m.KeptReferenced, m.Failed, m.Truncates, m.MessagesIgnored, m.OldValuesMissing, m.Held, m.SchemaProblems,
		m.Restored, m.Dangling, m.NewReferences, m.Unprefixed,
		m.ConfirmedLSN, m.LagBytes, m.Streaming, m.DeleteLatency,
	)
	return m
}

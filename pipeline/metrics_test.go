package pipeline

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/metrics"
)

// TestCountersFromZero: every labelled counter has a series at 0 for each
// configured storage (each failure reason too) and each watched table (each
// operation too) as soon as the pipeline exists, so that rate() and alerts
// on absent series work before the first event. Protect-only tables have
// no change series: their changes are not streamed.
func TestCountersFromZero(t *testing.T) {
	m := metrics.New()
	_, err := New(Config{
		Storages: map[string]cdccleaner.Storage{"media": newMemStorage(false), "bucket": newMemStorage(false)},
		Columns: []cdccleaner.Column{
			{Storage: "media", Schema: "public", Table: "photo", Name: "image"},
			{Storage: "bucket", Schema: "public", Table: "legacy", Name: "file", Protect: true},
		},
		Refs:     &fakeRefs{ev: &events{}, referenced: map[string]bool{}},
		Failures: &fakeRecorder{ev: &events{}},
		Metrics:  m,
		Logger:   zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, st := range []string{"media", "bucket"} {
		for _, name := range []string{"candidates", "deleted", "absent", "kept_referenced", "messages_ignored", "restored", "dangling", "new_references", "unprefixed_values"} {
			want = append(want, `cdc_cleaner_`+name+`_total{storage="`+st+`"} 0`)
		}
		for _, r := range FailureReasons() {
			want = append(want, `cdc_cleaner_failed_total{reason="`+r+`",storage="`+st+`"} 0`)
		}
	}
	for _, op := range []string{"delete", "insert", "update"} {
		want = append(want, `cdc_cleaner_changes_total{op="`+op+`",table="public.photo"} 0`)
	}
	want = append(want, `cdc_cleaner_truncates_total{table="public.photo"} 0`, `cdc_cleaner_messages_ignored_total{storage=""} 0`)
	var b strings.Builder
	for _, name := range []string{"cdc_cleaner_candidates_total", "cdc_cleaner_deleted_total", "cdc_cleaner_absent_total",
		"cdc_cleaner_kept_referenced_total", "cdc_cleaner_failed_total", "cdc_cleaner_messages_ignored_total", "cdc_cleaner_restored_total",
		"cdc_cleaner_dangling_total", "cdc_cleaner_new_references_total", "cdc_cleaner_unprefixed_values_total",
		"cdc_cleaner_changes_total", "cdc_cleaner_truncates_total"} {
		n, err := testutil.GatherAndCount(m.Registry, name)
		if err != nil || n == 0 {
			t.Errorf("%s: %d series (%v); want them from the start", name, n, err)
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			var labels []string
			for _, l := range metric.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			v := metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
			b.WriteString(mf.GetName() + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
		}
	}
	got := b.String()
	for _, w := range want {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("no series %s", w)
		}
	}
	if strings.Contains(got, `table="public.legacy"`) {
		t.Error("a protect-only table has change series")
	}
}

package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// TestAbsenceWatch walks the window of one storage through rounds of
// outcomes and checks what it says after each.
func TestAbsenceWatch(t *testing.T) {
	type round struct {
		deleted, absent int
		want            string // "warn", "recovered" or ""
		wantRatio       float64
	}
	tests := []struct {
		name   string
		rounds []round
	}{
		{
			name: "too few outcomes never warn",
			rounds: []round{
				{absent: 4, wantRatio: 1},
			},
		},
		{
			name: "mostly absent warns once the window holds enough, then not again within the interval",
			rounds: []round{
				{absent: 3, wantRatio: 1},
				{absent: 2, want: "warn", wantRatio: 1},
				{absent: 5, wantRatio: 1},
				{absent: 4, wantRatio: 1},
			},
		},
		{
			name: "a healthy mix never warns",
			rounds: []round{
				{deleted: 5, absent: 1, wantRatio: 1.0 / 6},
				{deleted: 2, absent: 2, wantRatio: 0.3},
				{absent: 3, wantRatio: 0.6}, // three deleted left the window
			},
		},
		{
			name: "exactly at the threshold is not above it",
			rounds: []round{
				{deleted: 1, absent: 9, wantRatio: 0.9},
			},
		},
		{
			name: "recovery is told once, and only after a warning",
			rounds: []round{
				{deleted: 1, wantRatio: 0},
				{absent: 9, wantRatio: 0.9},
				{absent: 1, want: "warn", wantRatio: 1},
				{deleted: 1, want: "recovered", wantRatio: 0.9},
				{deleted: 5, wantRatio: 0.4},
				// High again within the interval: quiet.
				{absent: 10, wantRatio: 1},
			},
		},
		{
			name: "old outcomes leave the window",
			rounds: []round{
				{deleted: 10, wantRatio: 0},
				{absent: 9, wantRatio: 0.9},
				{absent: 1, want: "warn", wantRatio: 1},
			},
		},
		{
			name: "a round larger than the window keeps its share",
			rounds: []round{
				{deleted: 30, absent: 70, wantRatio: 0.7},
				{deleted: 5, absent: 995, want: "warn", wantRatio: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g"}, []string{"storage"})
			a := newAbsenceWatch(gauge)
			a.window, a.minOutcomes = 10, 5
			for i, r := range tt.rounds {
				ex := cdccleaner.Candidate{Ref: cdccleaner.Ref{Storage: "media", Path: fmt.Sprintf("p%d", i)}, Source: "public.photo.image"}
				news := a.observe("media", r.deleted, r.absent, ex)
				got := ""
				switch {
				case news.warn && news.recovered:
					got = "both"
				case news.warn:
					got = "warn"
				case news.recovered:
					got = "recovered"
				}
				if got != r.want {
					t.Errorf("round %d (%+v): told %q, want %q", i, r, got, r.want)
				}
				if g := testutil.ToFloat64(gauge.WithLabelValues("media")); !near(g, r.wantRatio) {
					t.Errorf("round %d: gauge %v, want %v", i, g, r.wantRatio)
				}
				if news.warn && (news.example.Path == "" || news.example.Source == "") {
					t.Errorf("round %d: warning without an example: %+v", i, news)
				}
				if ring := a.storages["media"]; len(ring.absent) != a.window || ring.n > a.window {
					t.Errorf("round %d: ring of %d holding %d, want at most the window of %d", i, len(ring.absent), ring.n, a.window)
				}
			}
		})
	}

	t.Run("warns again after the interval while still high", func(t *testing.T) {
		a := newAbsenceWatch(nil)
		a.window, a.minOutcomes, a.warnEvery = 10, 5, 20*time.Millisecond
		if n := a.observe("media", 0, 10, cdccleaner.Candidate{}); !n.warn {
			t.Fatal("no first warning")
		}
		if n := a.observe("media", 0, 1, cdccleaner.Candidate{}); n.warn {
			t.Fatal("warned again within the interval")
		}
		time.Sleep(30 * time.Millisecond)
		if n := a.observe("media", 0, 1, cdccleaner.Candidate{}); !n.warn {
			t.Fatal("no warning after the interval")
		}
	})

	t.Run("storages are watched apart", func(t *testing.T) {
		a := newAbsenceWatch(nil)
		a.window, a.minOutcomes = 10, 5
		a.observe("media", 0, 10, cdccleaner.Candidate{})
		if n := a.observe("other", 10, 0, cdccleaner.Candidate{}); n.warn || n.ratio != 0 {
			t.Fatalf("other storage: %+v", n)
		}
	})
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestPercent(t *testing.T) {
	for share, want := range map[float64]string{0: "0%", 0.29: "29%", 0.9: "90%", 0.995: "99%", 1: "100%"} {
		if got := percent(share); got != want {
			t.Errorf("percent(%v) = %q, want %q", share, got, want)
		}
	}
}

// logLine is one JSON line of the pipeline's log.
type logLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Storage string `json:"storage"`
	Example string `json:"example_path"`
	Source  string `json:"example_source"`
}

// absenceLogs returns the lines of logs that tell about the absent share.
func absenceLogs(t *testing.T, logs *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if raw == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if strings.Contains(l.Message, "were already absent") {
			out = append(out, l)
		}
	}
	return out
}

// absentPaths returns n paths with prefix and the script that makes the
// fake storage answer Absent for them.
func absentPaths(prefix string, n int, sc map[string]script) []string {
	var paths []string
	for i := range n {
		p := fmt.Sprintf("%s/%02d.jpg", prefix, i)
		paths = append(paths, p)
		sc[p] = script{absent: true}
	}
	return paths
}

// TestSettleWarnsWhenMostlyAbsent: settle counts deleted and absent
// outcomes per storage; when the window is mostly absent it warns once,
// naming an example and what to do, stays quiet within the interval,
// and says once when the share falls back.
func TestSettleWarnsWhenMostlyAbsent(t *testing.T) {
	settle := func(t *testing.T, w *world, paths []string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := w.p.settle(ctx, mediaBatch(1, paths...)); err != nil {
			t.Fatal(err)
		}
	}
	ratio := func(w *world) float64 {
		return testutil.ToFloat64(w.p.cfg.Metrics.AbsentRatio.WithLabelValues("media"))
	}

	t.Run("mostly absent", func(t *testing.T) {
		var logs bytes.Buffer
		sc := map[string]script{}
		w := newWorld(t, worldOpts{script: sc, logs: &logs})
		if r := ratio(w); r != 0 {
			t.Fatalf("cdc_cleaner_absent_ratio before any deletion = %v, want 0", r)
		}
		first := absentPaths("first", 30, sc)
		settle(t, w, append(first, "present.jpg"))
		got := absenceLogs(t, &logs)
		if len(got) != 1 || got[0].Level != "warn" {
			t.Fatalf("absence logs %+v, want one warning", got)
		}
		msg := got[0].Message
		for _, want := range []string{`storage "media"`, "30 of the last 31", "96%", `"first/00.jpg" from public.photo.image`, "mapping from column values to files is probably wrong", "run cdc-cleaner check"} {
			if !strings.Contains(msg, want) {
				t.Errorf("warning %q does not say %q", msg, want)
			}
		}
		if got[0].Storage != "media" || got[0].Example != "first/00.jpg" || got[0].Source != "public.photo.image" {
			t.Errorf("warning fields %+v, want storage, example path and source", got[0])
		}
		if r := ratio(w); !near(r, 30.0/31) {
			t.Errorf("cdc_cleaner_absent_ratio = %v, want %v", r, 30.0/31)
		}

		// Another mostly absent batch within the interval: no new warning.
		settle(t, w, absentPaths("second", 30, sc))
		if got := absenceLogs(t, &logs); len(got) != 1 {
			t.Fatalf("absence logs %+v, want still the one warning", got)
		}

		// Files found again: 60 absent of 70 is below 90%; told once.
		var present []string
		for i := range 10 {
			present = append(present, fmt.Sprintf("ok/%d.jpg", i))
		}
		settle(t, w, present)
		settle(t, w, []string{"ok/more.jpg"})
		got = absenceLogs(t, &logs)
		if len(got) != 2 || got[1].Level != "info" || !strings.Contains(got[1].Message, "60 of the last 71") || !strings.Contains(got[1].Message, "no longer above 90%") {
			t.Fatalf("absence logs %+v, want the warning and one recovery", got)
		}
		if r := ratio(w); !near(r, 60.0/72) {
			t.Errorf("cdc_cleaner_absent_ratio = %v, want %v", r, 60.0/72)
		}
	})

	t.Run("healthy mix", func(t *testing.T) {
		var logs bytes.Buffer
		sc := map[string]script{}
		w := newWorld(t, worldOpts{script: sc, logs: &logs})
		for b := range 5 {
			paths := absentPaths(fmt.Sprintf("gone%d", b), 2, sc)
			for i := range 18 {
				paths = append(paths, fmt.Sprintf("here%d/%d.jpg", b, i))
			}
			settle(t, w, paths)
		}
		if got := absenceLogs(t, &logs); len(got) != 0 {
			t.Fatalf("absence logs %+v, want none", got)
		}
		if r := ratio(w); !near(r, 0.1) {
			t.Errorf("cdc_cleaner_absent_ratio = %v, want 0.1", r)
		}
	})

	t.Run("failed and kept paths do not count", func(t *testing.T) {
		var logs bytes.Buffer
		sc := map[string]script{}
		isDir := cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, errors.New("remove dir/: path is a directory"))
		var paths, referenced []string
		for i := range 30 {
			p := fmt.Sprintf("dir%d", i)
			sc[p] = script{permanent: isDir}
			paths = append(paths, p, fmt.Sprintf("ref%d.jpg", i))
			referenced = append(referenced, fmt.Sprintf("ref%d.jpg", i))
		}
		paths = append(paths, absentPaths("gone", 2, sc)...)
		w := newWorld(t, worldOpts{script: sc, referenced: referenced, logs: &logs})
		settle(t, w, paths)
		if got := absenceLogs(t, &logs); len(got) != 0 {
			t.Fatalf("absence logs %+v, want none: only 2 absent outcomes", got)
		}
		if r := ratio(w); r != 1 {
			t.Errorf("cdc_cleaner_absent_ratio = %v, want 1 (2 of 2)", r)
		}
	})

	t.Run("dry run observes nothing", func(t *testing.T) {
		var logs bytes.Buffer
		sc := map[string]script{}
		w := newWorld(t, worldOpts{script: sc, logs: &logs, dryRun: true})
		settle(t, w, absentPaths("gone", 30, sc))
		if got := absenceLogs(t, &logs); len(got) != 0 {
			t.Fatalf("absence logs %+v, want none in a dry run", got)
		}
		if r := ratio(w); r != 0 {
			t.Errorf("cdc_cleaner_absent_ratio = %v, want 0 in a dry run", r)
		}
	})
}

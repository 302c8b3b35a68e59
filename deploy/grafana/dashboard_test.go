package grafana

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboard parses every panel's expressions with Prometheus's own
// PromQL parser and checks that each metric they name is one the cleaner
// exports (../prometheus/metrics.txt, which an integration test compares
// with a running cleaner's), and that every contract metric is shown.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("cdc-cleaner.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("cdc-cleaner.json: %v", err)
	}
	list, err := os.ReadFile("../prometheus/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, l := range strings.Split(string(list), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			known = append(known, l)
		}
	}
	p := parser.NewParser(parser.Options{})
	shown := map[string]bool{}
	for _, panel := range d.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			expr, err := p.ParseExpr(target.Expr)
			if err != nil {
				t.Errorf("panel %q: %q: %v", panel.Title, target.Expr, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					name := strings.TrimSuffix(vs.Name, "_bucket") // a histogram's series
					if !slices.Contains(known, name) {
						t.Errorf("panel %q names %s, which the cleaner does not export", panel.Title, vs.Name)
					}
					shown[name] = true
				}
				return nil
			})
		}
	}
	for _, m := range known {
		if m != "cdc_cleaner_confirmed_lsn" && !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard has no uid or title")
	}
}

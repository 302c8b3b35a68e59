package prometheus

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// ruleFile is the part of a Prometheus rule file the test reads.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exported reads metrics.txt, the metric families the cleaner exports
// (integration_test/deploy_metrics_test.go checks it against a running
// cleaner).
func exported(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestAlertRules parses every rule of alerts.yml strictly, parses its
// expression with Prometheus's own PromQL parser, and checks that each
// metric it names is one the cleaner exports (or up, which Prometheus
// records for every scrape), that durations parse, and that every alert
// has a severity and a summary.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	known := exported(t)
	p := parser.NewParser(parser.Options{})
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %q: %v", r.Alert, r.Expr, err)
				continue
			}
			names := 0
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					names++
					if vs.Name != "up" && !slices.Contains(known, vs.Name) {
						t.Errorf("%s names %s, which the cleaner does not export (metrics.txt)", r.Alert, vs.Name)
					}
				}
				return nil
			})
			if names == 0 {
				t.Errorf("%s names no metric", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: no severity label or summary annotation", r.Alert)
			}
		}
	}
	// The alerts issue 17 asks for.
	for _, want := range []string{"CdcCleanerSlotLag", "CdcCleanerNotStreaming", "CdcCleanerFailedDeletions", "CdcCleanerDanglingReferences", "CdcCleanerMostlyAbsent", "CdcCleanerDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestAlertRulesRejectUnknownMetrics keeps TestAlertRules honest: a rule
// naming a metric the cleaner does not export is caught.
func TestAlertRulesRejectUnknownMetrics(t *testing.T) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(`cdc_cleaner_deletd_total > 0`)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !slices.Contains(exported(t), vs.Name) {
			found = true
		}
		return nil
	})
	if !found {
		t.Error("a misspelled metric was not caught")
	}
}

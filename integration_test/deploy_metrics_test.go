package integration_test

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestDeployMetricsList: deploy/prometheus/metrics.txt, which the alert
// rules' test (deploy/prometheus) checks every rule's metrics against, is
// exactly the list of metric families a running cleaner exports.
func TestDeployMetricsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"})
	p := e.start()
	_, body := get(t, "http://"+p.httpAddr(t)+"/metrics")
	var exported []string
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "cdc_cleaner_") {
			exported = append(exported, f[2])
		}
	}
	slices.Sort(exported)
	b, err := os.ReadFile("../deploy/prometheus/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			listed = append(listed, l)
		}
	}
	if !slices.Equal(listed, exported) {
		t.Errorf("deploy/prometheus/metrics.txt lists\n  %s\nbut the cleaner exports\n  %s\n(write the second list there)", strings.Join(listed, "\n  "), strings.Join(exported, "\n  "))
	}
}

package ledger

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/migrations"
)

// TestColumnsMatchSchema: the columns RecordFailures writes (and
// CheckReadiness checks) are those the migration creates, one parameter
// each.
func TestColumnsMatchSchema(t *testing.T) {
	create := regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS cdc_cleaner\.failed_deletions \((.*?)\n\);`).FindStringSubmatch(migrations.Schema)
	if create == nil {
		t.Fatal("migrations.Schema does not create cdc_cleaner.failed_deletions")
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(create[1], "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			defined[f[0]] = true
		}
	}
	for _, c := range columns {
		if !defined[c] {
			t.Errorf("column %q is not in the table migrations create", c)
		}
	}
	if n := len(regexp.MustCompile(`\$\d+`).FindAllString(insertSQL, -1)); n != len(columns) {
		t.Errorf("insertSQL has %d parameters for %d columns:\n%s", n, len(columns), insertSQL)
	}
}

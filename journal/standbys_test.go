package journal

import (
	"slices"
	"testing"
)

// TestSlotNames: synchronized_standby_slots read as PostgreSQL reads it.
// Splitting on commas alone kept "SB2" and "\"sb2\"" as they were written,
// matched no slot, and waited for ever.
func TestSlotNames(t *testing.T) {
	for setting, want := range map[string][]string{
		"":                    nil,
		"  ":                  nil,
		"sb1":                 {"sb1"},
		"SB2":                 {"sb2"},
		`"sb2"`:               {"sb2"},
		`"Mixed"`:             {"Mixed"},
		"sb2, sb2":            {"sb2"},
		" a ,b,, c ":          {"a", "b", "c"},
		`"with,comma", x`:     {"with,comma", "x"},
		`"with ""quote"""`:    {`with "quote"`},
		`"sb1" , SB1 , "SB1"`: {"sb1", "SB1"},
	} {
		if got := SlotNames(setting); !slices.Equal(got, want) {
			t.Errorf("SlotNames(%q) = %q, want %q", setting, got, want)
		}
	}
}

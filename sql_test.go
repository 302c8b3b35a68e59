package cdccleaner

import "testing"

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"":            `''`,
		"media":       `'media'`,
		"it's":        `'it''s'`,
		`we'ird\`:     `E'we''ird\\'`,
		`$."a\\b"`:    `E'$."a\\\\b"'`,
		"nul\x00byte": `'nulbyte'`,
		`"((?:[^"\\]`: `E'"((?:[^"\\\\]'`,
	} {
		if got := QuoteLiteral(in); got != want {
			t.Errorf("QuoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

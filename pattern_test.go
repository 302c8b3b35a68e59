package cdccleaner_test

import (
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestMatchPattern(t *testing.T) {
	patterns := []string{"defaults/*", "avatars/default.png", "static/**", "*/placeholder.jpg"}
	tests := map[string]bool{
		"defaults/avatar.png":          true,
		"defaults/sub/avatar.png":      false, // * does not cross /
		"avatars/default.png":          true,
		"avatars/user1.png":            false,
		"static/a.css":                 true,
		"static/deep/er/b.js":          true,
		"staticfile.js":                false,
		"uploads/placeholder.jpg":      true,
		"uploads/2024/placeholder.jpg": false,
		"photos/a.jpg":                 false,
	}
	for p, want := range tests {
		if got := cdccleaner.MatchPattern(patterns, p); got != want {
			t.Errorf("MatchPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	for pat, ok := range map[string]bool{"cache/**": true, "*.tmp": true, "a/[": false, "[/**": false} {
		if err := cdccleaner.ValidPattern(pat); (err == nil) != ok {
			t.Errorf("ValidPattern(%q) = %v", pat, err)
		}
	}
}

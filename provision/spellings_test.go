package provision

import (
	"strings"
	"testing"
)

func TestSpellingMessage(t *testing.T) {
	tests := []struct {
		name    string
		n       int64
		example string
		want    []string
	}{
		{"one", 1, "./dot.jpg", []string{`"public"."t"."f" holds 1 value that is not a canonical path`, `e.g. "./dot.jpg", which could name dot.jpg.`,
			"scan keeps every file such a value could name", "run compares values exactly", `does not keep a.jpg`}},
		{"several", 3, "/media/abs.jpg", []string{"holds 3 values that are not canonical paths", `e.g. "/media/abs.jpg", which could name abs.jpg, media/abs.jpg.`}},
		{"many names", 2, "/a/b/c/d/e/f/g.jpg", []string{"which could name g.jpg, f/g.jpg, e/f/g.jpg, d/e/f/g.jpg, c/d/e/f/g.jpg and 2 more."}},
		{"no file", 1, "/", []string{`e.g. "/", which could name no file.`}},
		{"long", 1, "/" + strings.Repeat("x", 300), []string{`... (301 bytes), which could name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spellingMessage(`"public"."t"."f"`, tt.n, tt.example)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("message lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

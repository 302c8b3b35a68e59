package cdccleaner_test

import (
	"errors"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want error // nil for a valid path
	}{
		{name: "file", path: "a.jpg"},
		{name: "nested", path: "media/2024/01/a.jpg"},
		{name: "unicode and spaces", path: "fotos/été 2024/ünïcode ✓.jpg"},
		{name: "backslash", path: `..\x`},
		{name: "backslash segment", path: `a\..\..\x`},
		{name: "dots in names", path: "...dots/a..b/.hidden/..."},
		{name: "dot dot prefix in name", path: "..x/y.."},
		{name: "leading space", path: " a"},
		{name: "long", path: strings.Repeat("a/", 500) + "f"},

		{name: "empty", path: "", want: cdccleaner.ErrEmptyPath},
		{name: "NUL", path: "a\x00b", want: cdccleaner.ErrNULByte},
		{name: "NUL only", path: "\x00", want: cdccleaner.ErrNULByte},
		{name: "absolute", path: "/etc/passwd", want: cdccleaner.ErrAbsolutePath},
		{name: "slash", path: "/", want: cdccleaner.ErrAbsolutePath},
		{name: "double slash prefix", path: "//a", want: cdccleaner.ErrAbsolutePath},
		{name: "dot dot", path: "..", want: cdccleaner.ErrDotDot},
		{name: "parent", path: "../x", want: cdccleaner.ErrDotDot},
		{name: "parent after segment", path: "a/../../x", want: cdccleaner.ErrDotDot},
		{name: "parent inside", path: "a/../b", want: cdccleaner.ErrDotDot},
		{name: "trailing parent", path: "a/..", want: cdccleaner.ErrDotDot},
		{name: "dot", path: ".", want: cdccleaner.ErrNotCanonical},
		{name: "double slash", path: "a//b", want: cdccleaner.ErrNotCanonical},
		{name: "dot prefix", path: "./a", want: cdccleaner.ErrNotCanonical},
		{name: "dot segment", path: "a/./b", want: cdccleaner.ErrNotCanonical},
		{name: "trailing dot", path: "a/.", want: cdccleaner.ErrNotCanonical},
		{name: "trailing slash", path: "a/", want: cdccleaner.ErrNotCanonical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cdccleaner.ValidatePath(tt.path)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidatePath(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidatePath(%q) = %v, want %v", tt.path, err, tt.want)
			}
			if !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
				t.Errorf("ValidatePath(%q) = %v: permanent %v, reason %q; want permanent rejected_path",
					tt.path, err, cdccleaner.IsPermanent(err), cdccleaner.Reason(err))
			}
		})
	}
}

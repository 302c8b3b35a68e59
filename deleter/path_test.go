package deleter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter"
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

		{name: "empty", path: "", want: deleter.ErrEmptyPath},
		{name: "NUL", path: "a\x00b", want: deleter.ErrNULByte},
		{name: "NUL only", path: "\x00", want: deleter.ErrNULByte},
		{name: "absolute", path: "/etc/passwd", want: deleter.ErrAbsolutePath},
		{name: "slash", path: "/", want: deleter.ErrAbsolutePath},
		{name: "double slash prefix", path: "//a", want: deleter.ErrAbsolutePath},
		{name: "dot dot", path: "..", want: deleter.ErrDotDot},
		{name: "parent", path: "../x", want: deleter.ErrDotDot},
		{name: "parent after segment", path: "a/../../x", want: deleter.ErrDotDot},
		{name: "parent inside", path: "a/../b", want: deleter.ErrDotDot},
		{name: "trailing parent", path: "a/..", want: deleter.ErrDotDot},
		{name: "dot", path: ".", want: deleter.ErrNotCanonical},
		{name: "double slash", path: "a//b", want: deleter.ErrNotCanonical},
		{name: "dot prefix", path: "./a", want: deleter.ErrNotCanonical},
		{name: "dot segment", path: "a/./b", want: deleter.ErrNotCanonical},
		{name: "trailing dot", path: "a/.", want: deleter.ErrNotCanonical},
		{name: "trailing slash", path: "a/", want: deleter.ErrNotCanonical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := deleter.ValidatePath(tt.path)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidatePath(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidatePath(%q) = %v, want %v", tt.path, err, tt.want)
			}
			if !deleter.IsPermanent(err) || deleter.Reason(err) != deleter.ReasonRejectedPath {
				t.Errorf("ValidatePath(%q) = %v: permanent %v, reason %q; want permanent rejected_path",
					tt.path, err, deleter.IsPermanent(err), deleter.Reason(err))
			}
		})
	}
}

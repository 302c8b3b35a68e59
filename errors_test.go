package cdccleaner_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestPermanentError(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name       string
		err        error
		permanent  bool
		reason     string
		wrapsBoom  bool
		wantString string
	}{
		{name: "nil", err: nil, permanent: false, reason: ""},
		{name: "plain", err: base, permanent: false, reason: cdccleaner.ReasonTransient, wrapsBoom: true, wantString: "boom"},
		{name: "context", err: fmt.Errorf("delete: %w", context.Canceled), reason: cdccleaner.ReasonTransient, wantString: "delete: context canceled"},
		{name: "permanent", err: cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, base), permanent: true, reason: cdccleaner.ReasonIsDirectory, wrapsBoom: true, wantString: "boom"},
		{name: "wrapped permanent", err: fmt.Errorf("outer: %w", cdccleaner.Permanent(cdccleaner.ReasonEscapesRoot, base)), permanent: true, reason: cdccleaner.ReasonEscapesRoot, wrapsBoom: true, wantString: "outer: boom"},
		{name: "joined permanent", err: errors.Join(errors.New("other"), cdccleaner.Permanent(cdccleaner.ReasonNameTooLong, base)), permanent: true, reason: cdccleaner.ReasonNameTooLong, wrapsBoom: true, wantString: "other\nboom"},
		{name: "permanent without cause", err: cdccleaner.Permanent(cdccleaner.ReasonSymlinkLoop, nil), permanent: true, reason: cdccleaner.ReasonSymlinkLoop, wantString: "symlink_loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cdccleaner.IsPermanent(tt.err); got != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tt.permanent)
			}
			if got := cdccleaner.Reason(tt.err); got != tt.reason {
				t.Errorf("Reason = %q, want %q", got, tt.reason)
			}
			if got := errors.Is(tt.err, base); got != tt.wrapsBoom {
				t.Errorf("errors.Is(err, base) = %v, want %v", got, tt.wrapsBoom)
			}
			if tt.err != nil && tt.err.Error() != tt.wantString {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.wantString)
			}
		})
	}
}

func TestReasonsAreLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range cdccleaner.Reasons() {
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
		for _, c := range r {
			if (c < 'a' || c > 'z') && c != '_' {
				t.Errorf("reason %q is not snake_case", r)
				break
			}
		}
	}
	if !seen[cdccleaner.ReasonTransient] || !seen[cdccleaner.ReasonRejectedPath] {
		t.Errorf("Reasons() = %v lacks transient or rejected_path", cdccleaner.Reasons())
	}
}

func TestIsPermission(t *testing.T) {
	for name, tt := range map[string]struct {
		err  error
		want bool
	}{
		"EACCES":          {&fs.PathError{Op: "unlinkat", Path: "a", Err: syscall.EACCES}, true},
		"EPERM":           {fmt.Errorf("delete: %w", syscall.EPERM), true},
		"EROFS":           {syscall.EROFS, false},
		"EIO":             {syscall.EIO, false},
		"permanent EPERM": {cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, syscall.EPERM), false},
		"nil":             {nil, false},
	} {
		if got := cdccleaner.IsPermission(tt.err); got != tt.want {
			t.Errorf("%s: IsPermission = %v, want %v", name, got, tt.want)
		}
	}
}

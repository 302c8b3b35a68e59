package deleter_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter"
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
		{name: "plain", err: base, permanent: false, reason: deleter.ReasonTransient, wrapsBoom: true, wantString: "boom"},
		{name: "context", err: fmt.Errorf("delete: %w", context.Canceled), reason: deleter.ReasonTransient, wantString: "delete: context canceled"},
		{name: "permanent", err: deleter.Permanent(deleter.ReasonIsDirectory, base), permanent: true, reason: deleter.ReasonIsDirectory, wrapsBoom: true, wantString: "boom"},
		{name: "wrapped permanent", err: fmt.Errorf("outer: %w", deleter.Permanent(deleter.ReasonEscapesRoot, base)), permanent: true, reason: deleter.ReasonEscapesRoot, wrapsBoom: true, wantString: "outer: boom"},
		{name: "joined permanent", err: errors.Join(errors.New("other"), deleter.Permanent(deleter.ReasonNameTooLong, base)), permanent: true, reason: deleter.ReasonNameTooLong, wrapsBoom: true, wantString: "other\nboom"},
		{name: "permanent without cause", err: deleter.Permanent(deleter.ReasonSymlinkLoop, nil), permanent: true, reason: deleter.ReasonSymlinkLoop, wantString: "symlink_loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deleter.IsPermanent(tt.err); got != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tt.permanent)
			}
			if got := deleter.Reason(tt.err); got != tt.reason {
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
	for _, r := range deleter.Reasons() {
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
	if !seen[deleter.ReasonTransient] || !seen[deleter.ReasonRejectedPath] {
		t.Errorf("Reasons() = %v lacks transient or rejected_path", deleter.Reasons())
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
		"permanent EPERM": {deleter.Permanent(deleter.ReasonIsDirectory, syscall.EPERM), false},
		"nil":             {nil, false},
	} {
		if got := deleter.IsPermission(tt.err); got != tt.want {
			t.Errorf("%s: IsPermission = %v, want %v", name, got, tt.want)
		}
	}
}

package cdccleaner

import (
	"fmt"
	"path"
	"strings"
)

// ValidatePath checks that p is a path every storage can use as is: relative,
// non-empty, free of NUL bytes and ".." segments, and canonical
// (path.Clean(p) == p, and not "."). It returns nil or a permanent error with
// reason ReasonRejectedPath wrapping one of ErrEmptyPath, ErrAbsolutePath,
// ErrNULByte, ErrDotDot or ErrNotCanonical.
//
// Non-canonical paths ("a//b", "./a", "a/./b", "a/") are rejected, not
// normalised: on S3 "a//b" and "a/b" are different keys, on local disk the
// same file, so normalising could delete a file that another row references
// under its canonical spelling. Backslashes are ordinary characters; Unicode
// and spaces are fine.
func ValidatePath(p string) error {
	var cause error
	switch {
	case p == "":
		cause = ErrEmptyPath
	case strings.IndexByte(p, 0) >= 0:
		cause = ErrNULByte
	case p[0] == '/':
		cause = ErrAbsolutePath
	case hasDotDot(p):
		cause = ErrDotDot
	case p == "." || path.Clean(p) != p:
		cause = ErrNotCanonical
	default:
		return nil
	}
	return Permanent(ReasonRejectedPath, fmt.Errorf("validate path %q: %w", p, cause))
}

// hasDotDot reports whether a "/"-separated segment of p is "..".
func hasDotDot(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

package cdccleaner

import (
	"fmt"
	"path"
	"strings"
)

// MatchPattern reports whether p matches one of patterns, the keep patterns
// of a storage or the exclude patterns of a scan. A pattern is a path.Match
// glob ("defaults/*.png": * does not cross a /), or ends in "/**" to match
// everything below a directory at any depth ("defaults/**").
func MatchPattern(patterns []string, p string) bool {
	for _, pat := range patterns {
		if dir, ok := strings.CutSuffix(pat, "/**"); ok {
			if ok, _ := path.Match(dir, p); ok {
				return true // the directory itself, should a row name it
			}
			// Every ancestor of p is a candidate for dir.
			for i := strings.IndexByte(p, '/'); i >= 0; i = nextSlash(p, i) {
				if ok, _ := path.Match(dir, p[:i]); ok {
					return true
				}
			}
			continue
		}
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// ValidPattern checks a keep or exclude pattern (see MatchPattern). The
// error names the pattern and wraps path.ErrBadPattern.
func ValidPattern(pat string) error {
	if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %w", pat, err)
	}
	return nil
}

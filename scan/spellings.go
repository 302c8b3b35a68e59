package scan

import (
	"context"
	"fmt"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// SpellingReader reads the values of a storage's columns that are not
// canonical paths (refcheck.Spellings implements it).
type SpellingReader interface {
	// Read calls fn with each distinct value of each column mapped to
	// storage for which cdccleaner.NonCanonical is true. It bounds how
	// many it reads per column, failing with a message that names the
	// column beyond that.
	Read(ctx context.Context, storage string, fn func(column, value string) error) error
}

// DefaultSpellingsMaxAge is how old the names read from non-canonical
// values may be when a batch is re-checked before deletion.
const DefaultSpellingsMaxAge = 30 * time.Second

// MaxSpellingNames bounds the names that the non-canonical values of a
// storage may give (each value gives one per "/"-separated segment of each
// way it can be read): beyond it a scan refuses, so memory stays bounded
// (a few hundred MB at most).
const MaxSpellingNames = 4_000_000

// spellings are the canonical names the storage's non-canonical values
// could name, as last read.
type spellings struct {
	names map[string]struct{}
	at    time.Time     // when the read began
	took  time.Duration // how long it took
}

// loadSpellings reads the non-canonical values again and replaces the
// names.
func (s *scanner) loadSpellings(ctx context.Context) error {
	if s.cfg.Spellings == nil {
		return nil
	}
	at := s.cfg.Now()
	names := map[string]struct{}{}
	var values int64
	err := s.cfg.Spellings.Read(ctx, s.cfg.Storage, func(column, v string) error {
		values++
		for _, n := range cdccleaner.CanonicalNames(v) {
			names[n] = struct{}{}
		}
		if len(names) > MaxSpellingNames {
			return fmt.Errorf("the values that are not canonical paths could name more than %d files (the last read: %s, from %s): scan keeps every file such a value could name and will not hold that many names in memory; store canonical paths (relative to the storage, without \"./\", \"//\", \"..\", a leading \"/\" or a URL) in these rows, then scan again",
				MaxSpellingNames, cdccleaner.ExampleValue(v), column)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage %q: %w", s.cfg.Storage, err)
	}
	s.spellings = spellings{names: names, at: at, took: s.cfg.Now().Sub(at)}
	s.stats.Spellings = values
	return nil
}

// refreshSpellings reads the non-canonical values again when the last
// read is older than SpellingsMaxAge, or than four times as long as it
// took: on tables so large that a read takes longer than the interval,
// reading them before every batch would leave no time to delete, so at
// most a fifth of the deletion's time goes to reading them.
func (s *scanner) refreshSpellings(ctx context.Context) error {
	if s.cfg.Spellings == nil || s.cfg.Now().Sub(s.spellings.at) < max(s.cfg.SpellingsMaxAge, 4*s.spellings.took) {
		return nil
	}
	return s.loadSpellings(ctx)
}

// addSpelled marks as referenced the paths that a non-canonical value
// could name, and returns how many the database had not marked.
func (s *scanner) addSpelled(refs map[string]bool, paths []string) int64 {
	var n int64
	for _, p := range paths {
		if _, ok := s.spellings.names[p]; ok && !refs[p] {
			refs[p] = true
			n++
		}
	}
	return n
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalRootsOverlapThroughSymlinks: roots written apart that are one
// directory once symlinks are resolved are refused when the storages open.
func TestLocalRootsOverlapThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "media")
	if err := os.MkdirAll(filepath.Join(real, "avatars"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "avatars-link")
	if err := os.Symlink(filepath.Join(real, "avatars"), link); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Storages: map[string]*Storage{
		"media":   {Type: StorageLocal, Root: real},
		"avatars": {Type: StorageLocal, Root: link},
	}}
	if err := cfg.LocalRootsOverlap(); err == nil || !strings.Contains(err.Error(), "symlinks resolved") {
		t.Fatalf("overlap through a symlink: %v", err)
	}
	cfg.Storages["avatars"].Root = t.TempDir()
	if err := cfg.LocalRootsOverlap(); err != nil {
		t.Fatalf("separate roots: %v", err)
	}
}

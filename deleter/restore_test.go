package deleter_test

import (
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

func TestCheckRestore(t *testing.T) {
	tests := []struct {
		name     string
		p, trash string
		prefix   string
		ok       bool
	}{
		{name: "top level", p: "a.jpg", trash: ".trash/a.jpg", prefix: ".trash/", ok: true},
		{name: "nested", p: "photos/2024/a.jpg", trash: ".trash/photos/2024/a.jpg", prefix: ".trash/", ok: true},
		{name: "trash elsewhere in the trash", p: "a.jpg", trash: ".trash/old/a.jpg", prefix: ".trash/", ok: true},
		{name: "deep prefix", p: "a.jpg", trash: "x/.trash/a.jpg", prefix: "x/.trash/", ok: true},
		{name: "p looks like the trash", p: ".trash", trash: ".trash/a", prefix: ".trash/", ok: true},
		{name: "p shares a prefix with the trash", p: ".trashy/a", trash: ".trash/a", prefix: ".trash/", ok: true},

		{name: "p with dot dot", p: "../a", trash: ".trash/a", prefix: ".trash/"},
		{name: "p absolute", p: "/a", trash: ".trash/a", prefix: ".trash/"},
		{name: "p empty", p: "", trash: ".trash/a", prefix: ".trash/"},
		{name: "p not canonical", p: "a//b", trash: ".trash/a/b", prefix: ".trash/"},
		{name: "trash with dot dot", p: "a", trash: ".trash/../a", prefix: ".trash/"},
		{name: "trash absolute", p: "a", trash: "/.trash/a", prefix: ".trash/"},
		{name: "trash empty", p: "a", trash: "", prefix: ".trash/"},
		{name: "trash NUL", p: "a", trash: ".trash/a\x00", prefix: ".trash/"},
		{name: "trash outside the prefix", p: "a", trash: "b", prefix: ".trash/"},
		{name: "trash is the prefix without slash", p: "a", trash: ".trash", prefix: ".trash/"},
		{name: "trash shares a prefix", p: "a", trash: ".trashy/a", prefix: ".trash/"},
		{name: "p inside the trash", p: ".trash/a", trash: ".trash/.trash/a", prefix: ".trash/"},
		{name: "no trash", p: "a", trash: "a", prefix: ""},
		{name: "prefix without slash", p: "a", trash: ".trash/a", prefix: ".trash"},
		{name: "prefix absolute", p: "a", trash: "trash/a", prefix: "/trash/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := deleter.CheckRestore(tt.p, tt.trash, tt.prefix)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckRestore(%q, %q, %q) = %v, want nil", tt.p, tt.trash, tt.prefix, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckRestore(%q, %q, %q) = nil, want an error", tt.p, tt.trash, tt.prefix)
			}
			if !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
				t.Errorf("CheckRestore(%q, %q, %q) = %v, want a permanent rejected_path error", tt.p, tt.trash, tt.prefix, err)
			}
		})
	}
}

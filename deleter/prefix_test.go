package deleter_test

import (
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

func TestCheckPrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		ok     bool
	}{
		{name: "top level", prefix: "va/", ok: true},
		{name: "nested", prefix: "va/ri/variants/abc/", ok: true},
		{name: "in the trash", prefix: ".trash/va/ri/", ok: true},
		{name: "unicode and spaces", prefix: "été ✓/a b/", ok: true},

		{name: "empty", prefix: ""},
		{name: "only a slash", prefix: "/"},
		{name: "no slash at the end", prefix: "va/ri"},
		{name: "absolute", prefix: "/va/"},
		{name: "dot", prefix: "./"},
		{name: "dot dot", prefix: "../"},
		{name: "dot dot inside", prefix: "va/../x/"},
		{name: "double slash", prefix: "va//"},
		{name: "double slash inside", prefix: "va//ri/"},
		{name: "dot segment", prefix: "va/./ri/"},
		{name: "NUL", prefix: "va\x00/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := deleter.CheckPrefix(tt.prefix)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPrefix(%q) = %v, want nil", tt.prefix, err)
				}
				return
			}
			if !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
				t.Errorf("CheckPrefix(%q) = %v, want a permanent rejected_path error", tt.prefix, err)
			}
		})
	}
}

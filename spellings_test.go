package cdccleaner_test

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestCanonicalNames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty: no file", "", nil},
		{"canonical", "a.jpg", []string{"a.jpg"}},
		{"canonical nested", "media/x/a.jpg", []string{"media/x/a.jpg"}},
		{"canonical with query-like text", "a.jpg?x=1", []string{"a.jpg?x=1"}},
		{"canonical percent", "a%20b.jpg", []string{"a%20b.jpg"}},
		{"dot slash", "./dot.jpg", []string{"dot.jpg"}},
		{"double slash", "sub//dbl.jpg", []string{"dbl.jpg", "sub/dbl.jpg"}},
		{"absolute", "/media/abs.jpg", []string{"abs.jpg", "media/abs.jpg"}},
		{"inner dot", "a/./b.jpg", []string{"b.jpg", "a/b.jpg"}},
		{"trailing slash", "dir/", []string{"dir"}},
		{"dot", ".", nil},
		{"slash", "/", nil},
		{"dot dot", "..", nil},
		{"dot dot escape", "../outside.jpg", []string{"outside.jpg"}},
		{"dot dot inner", "x/../../a/b.jpg", []string{"b.jpg", "a/b.jpg"}},
		{"dot dot resolved", "a/b/../c.jpg", []string{"c.jpg", "a/c.jpg"}},
		{"http URL", "http://127.0.0.1:9000/bucket/media/obj.jpg", []string{
			"obj.jpg", "media/obj.jpg", "bucket/media/obj.jpg", "127.0.0.1:9000/bucket/media/obj.jpg", "http:/127.0.0.1:9000/bucket/media/obj.jpg"}},
		{"virtual-hosted S3 URL with a query", "https://b.s3.amazonaws.com/m/a.jpg?X-Amz-Signature=f/g", []string{
			"g", "m/a.jpg", "a.jpg", "a.jpg?X-Amz-Signature=f/g", "m/a.jpg?X-Amz-Signature=f/g",
			"b.s3.amazonaws.com/m/a.jpg", "https:/b.s3.amazonaws.com/m/a.jpg",
			"b.s3.amazonaws.com/m/a.jpg?X-Amz-Signature=f/g", "https:/b.s3.amazonaws.com/m/a.jpg?X-Amz-Signature=f/g"}},
		{"s3 URL", "s3://bucket/prefix/k.jpg", []string{"k.jpg", "prefix/k.jpg", "bucket/prefix/k.jpg", "s3:/bucket/prefix/k.jpg"}},
		{"fragment", "/a.jpg#x", []string{"a.jpg", "a.jpg#x"}},
		{"percent-encoded", "/media/a%20b.jpg", []string{"a b.jpg", "a%20b.jpg", "media/a b.jpg", "media/a%20b.jpg"}},
		{"encoded slash", "/a%2Fb.jpg", []string{"b.jpg", "a/b.jpg", "a%2Fb.jpg"}},
		{"plus", "/a+b.jpg", []string{"a b.jpg", "a+b.jpg"}},
		{"bad escape", "/a%zz.jpg", []string{"a%zz.jpg"}},
		{"protocol-relative", "//cdn.example.com/a.jpg", []string{"a.jpg", "cdn.example.com/a.jpg"}},
		{"NUL escape", "/%00/a.jpg", []string{"a.jpg", "%00/a.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cdccleaner.CanonicalNames(tt.in)
			if !slices.Equal(sortedCopy(got), sortedCopy(tt.want)) {
				t.Errorf("CanonicalNames(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for i := 1; i < len(got); i++ {
				if len(got[i]) < len(got[i-1]) {
					t.Errorf("not shortest first: %q", got)
				}
			}
		})
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// FuzzCanonicalNames: never panics; every name is canonical
// (cdccleaner.ValidatePath accepts it); a canonical value names exactly
// itself; NonCanonicalPattern (as Go reads it) matches exactly the
// non-empty values without NUL that ValidatePath rejects; a non-canonical
// value names at least its plain cleaned form and every suffix of it.
func FuzzCanonicalNames(f *testing.F) {
	for _, s := range []string{"", "a.jpg", "./dot.jpg", "sub//dbl.jpg", "/media/abs.jpg", "..", ".", "a/", "a/../b",
		"http://127.0.0.1:9000/b/m/o.jpg", "s3://b/k", "https://h/a%20b.jpg?x=1#f", "//h/a", "a%2f..%2fb", "/%00/x", ".a/..b/c.."} {
		f.Add(s)
	}
	re := regexp.MustCompile(cdccleaner.NonCanonicalPattern)
	f.Fuzz(func(t *testing.T, v string) {
		names := cdccleaner.CanonicalNames(v)
		for _, n := range names {
			if err := cdccleaner.ValidatePath(n); err != nil {
				t.Fatalf("CanonicalNames(%q) gave %q: %v", v, n, err)
			}
		}
		valid := cdccleaner.ValidatePath(v) == nil
		if valid && !slices.Equal(names, []string{v}) {
			t.Fatalf("CanonicalNames(%q) = %q, want only itself", v, names)
		}
		if v != "" && !strings.Contains(v, "\x00") {
			if re.MatchString(v) == valid || cdccleaner.NonCanonical(v) == valid {
				t.Fatalf("%q: pattern matches %v, but ValidatePath says valid=%v", v, re.MatchString(v), valid)
			}
		}
		if v == "" || valid {
			return
		}
		plain := strings.TrimPrefix(path.Clean("/"+v), "/")
		for plain != "" {
			if !strings.Contains(plain, "\x00") && !slices.Contains(names, plain) {
				t.Fatalf("CanonicalNames(%q) = %q lacks %q", v, names, plain)
			}
			i := strings.IndexByte(plain, '/')
			if i < 0 {
				break
			}
			plain = plain[i+1:]
		}
		if len(names) != len(slices.Compact(sortedCopy(names))) {
			t.Fatalf("CanonicalNames(%q) = %q has duplicates", v, names)
		}
	})
}

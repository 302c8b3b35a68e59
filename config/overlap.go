package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// S3Overlap refuses two s3 storages whose prefixes in one bucket contain each
// other once their endpoints are the ones the S3 clients resolved (endpoints,
// by storage). The configuration check takes an empty endpoint for AWS; the
// AWS SDK takes AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or endpoint_url in the
// AWS config file instead, which can be a server another storage names.
// Both compare with S3Location. The storages are opened by then.
func (c *Config) S3Overlap(endpoints map[string]string) error {
	names := make([]string, 0, len(endpoints))
	for name := range endpoints {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, a := range names {
		sa := c.Storages[a]
		la := NewS3Location(endpoints[a], sa.Bucket, sa.Prefix)
		for _, b := range names[i+1:] {
			sb := c.Storages[b]
			if !la.Overlaps(NewS3Location(endpoints[b], sb.Bucket, sb.Prefix)) {
				continue
			}
			return fmt.Errorf("storages.%s.prefix: %q in bucket %q overlaps storage %q (prefix %q in bucket %q) on the endpoints the S3 client resolved, %s and %s (from endpoint, or else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or endpoint_url in the AWS config file): objects under both would be checked against only one storage's columns; use one storage, or prefixes that do not contain each other",
				b, sb.Prefix, sb.Bucket, a, sa.Prefix, sa.Bucket, showEndpoint(endpoints[a]), showEndpoint(endpoints[b]))
		}
	}
	return nil
}

func showEndpoint(e string) string {
	if e == "" {
		return "AWS's default"
	}
	return fmt.Sprintf("%q", e)
}

// LocalRootsOverlap refuses two local storages whose roots are the same
// directory, or one inside the other, once symlinks are resolved (the
// check of Validate compares the paths as written, without looking at the
// file system). The storages' roots must exist.
func (c *Config) LocalRootsOverlap() error {
	real := map[string]string{}
	for name, s := range c.Storages {
		if s.Type != StorageLocal {
			continue
		}
		r, err := filepath.EvalSymlinks(s.Root)
		if err != nil {
			return fmt.Errorf("storages.%s.root: %w", name, err)
		}
		real[name] = r
	}
	for a, ra := range real {
		for b, rb := range real {
			if a >= b {
				continue
			}
			if ra == rb || strings.HasPrefix(rb+"/", ra+"/") || strings.HasPrefix(ra+"/", rb+"/") {
				return fmt.Errorf("storages.%s.root and storages.%s.root are the same directory or one inside the other (%s, %s, symlinks resolved): files reachable from both would be checked against only one storage's columns; use one storage", a, b, ra, rb)
			}
		}
	}
	return nil
}

package s3_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// benchObjects starts a server, stores b.N empty objects under a prefix
// with the timer stopped, and returns the storage on that prefix and the
// paths.
func benchObjects(b *testing.B) (*s3test.Server, *s3.Storage, string, []string) {
	b.Helper()
	b.StopTimer()
	srv := s3test.Start(b, s3test.Options{})
	prefix := srv.Prefix() + "bench/"
	paths := make([]string, b.N)
	keys := make([]string, b.N)
	for i := range paths {
		paths[i] = fmt.Sprintf("media/%03d/%07d.jpg", i%1000, i)
		keys[i] = prefix + paths[i]
	}
	srv.PutKeys(b, keys, nil)
	st := newS3(b, srv.Options(prefix))
	b.ResetTimer()
	return srv, st, prefix, paths
}

// benchDone checks, with the timer stopped, that every object is gone, and
// reports the rate.
func benchDone(b *testing.B, srv *s3test.Server, prefix string) {
	b.Helper()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	if left := srv.Keys(b, prefix); len(left) != 0 {
		b.Fatalf("%d objects left, e.g. %s", len(left), left[0])
	}
}

// BenchmarkS3DeleteBatched deletes b.N objects through s3.Storage:
// DeleteObjects with up to 1000 keys, 4 requests in flight. perCall is how
// many paths one Delete call gets: all of them, or the pipeline's default
// batch of 500 (one request at a time).
func BenchmarkS3DeleteBatched(b *testing.B) {
	for _, perCall := range []int{0, 500} {
		name := "paths-per-call=all"
		if perCall > 0 {
			name = fmt.Sprintf("paths-per-call=%d", perCall)
		}
		b.Run(name, func(b *testing.B) {
			srv, st, prefix, paths := benchObjects(b)
			step := perCall
			if step == 0 {
				step = len(paths)
			}
			b.StartTimer()
			for start := 0; start < len(paths); start += step {
				for _, r := range st.Delete(context.Background(), paths[start:min(start+step, len(paths))]) {
					if r.Outcome != cdccleaner.Deleted {
						b.Fatalf("Delete(%q) = %v (err %v)", r.Path, r.Outcome, r.Err)
					}
				}
			}
			benchDone(b, srv, prefix)
		})
	}
}

// BenchmarkS3DeleteOneByOne deletes b.N objects with one DeleteObject call
// per key on the storage's own client: one at a time, and with as many in
// flight as s3.Storage allows DeleteObjects requests (4), for a comparison
// of batching alone.
func BenchmarkS3DeleteOneByOne(b *testing.B) {
	for _, inFlight := range []int{1, 4} {
		b.Run(fmt.Sprintf("in-flight=%d", inFlight), func(b *testing.B) {
			srv, st, prefix, paths := benchObjects(b)
			client := st.Client()
			b.StartTimer()
			var wg sync.WaitGroup
			errs := make(chan error, inFlight)
			for w := range inFlight {
				wg.Go(func() {
					for i := w; i < len(paths); i += inFlight {
						_, err := client.DeleteObject(context.Background(), &awss3.DeleteObjectInput{
							Bucket: aws.String(srv.Bucket()),
							Key:    aws.String(st.Key(paths[i])),
						})
						if err != nil {
							errs <- fmt.Errorf("DeleteObject %s: %w", st.Key(paths[i]), err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			benchDone(b, srv, prefix)
		})
	}
}

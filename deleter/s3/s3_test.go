package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// s3Fixture is a storage prefix "store/" under the server's unique prefix;
// the rest of the unique prefix is "outside" the storage.
type s3Fixture struct {
	srv    *s3test.Server
	prefix string // the storage's prefix
}

var _ deletertest.Fixture = (*s3Fixture)(nil)

func newS3Fixture(t *testing.T, opts s3test.Options) *s3Fixture {
	t.Helper()
	srv := s3test.Start(t, opts)
	return &s3Fixture{srv: srv, prefix: srv.Prefix() + "store/"}
}

// CannotTellAbsent: S3 reports a missing key as Deleted.
func (f *s3Fixture) CannotTellAbsent() bool { return true }

func (f *s3Fixture) Put(t *testing.T, p string, data []byte) {
	t.Helper()
	f.srv.Put(t, f.prefix+p, data)
}

func (f *s3Fixture) Exists(t *testing.T, p string) bool {
	t.Helper()
	return f.srv.Exists(t, f.prefix+p)
}

// PutOutside puts name where "../"+name would land if the storage joined
// and cleaned keys: next to "store/".
func (f *s3Fixture) PutOutside(t *testing.T, name string) func() bool {
	t.Helper()
	key := f.srv.Prefix() + name
	f.srv.Put(t, key, []byte("outside"))
	return func() bool { return f.srv.Exists(t, key) }
}

// options are the s3.Options for the fixture's storage.
func (f *s3Fixture) options() s3.Options { return f.srv.Options(f.prefix) }

// keys returns the keys of paths in the storage.
func (f *s3Fixture) keys(paths ...string) []string {
	keys := make([]string, len(paths))
	for i, p := range paths {
		keys[i] = f.prefix + p
	}
	return keys
}

// checkConfined fails t if the server was asked about any key outside the
// storage's prefix. Against an external endpoint there is no record.
func (f *s3Fixture) checkConfined(t *testing.T) {
	t.Helper()
	for _, k := range f.srv.ReceivedKeys() {
		if !strings.HasPrefix(k, f.prefix) {
			t.Errorf("the server was asked about %q, outside the storage prefix %q", k, f.prefix)
		}
	}
}

func newS3(t testing.TB, opts s3.Options) *s3.Storage {
	t.Helper()
	s, err := s3.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3Contract(t *testing.T) {
	for _, trash := range []bool{false, true} {
		t.Run(fmt.Sprintf("trash=%v", trash), func(t *testing.T) {
			deletertest.RunStorageContract(t, func(t *testing.T) (cdccleaner.Storage, deletertest.Fixture) {
				fx := newS3Fixture(t, s3test.Options{})
				opts := fx.options()
				opts.Trash, opts.TrashPrefix = trash, ".trash/"
				t.Cleanup(func() { fx.checkConfined(t) })
				return newS3(t, opts), fx
			})
		})
	}
}

// deleteObjectsBody is a DeleteObjects request body for keys, as the SDK
// sends it.
func deleteObjectsBody(keys ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	for _, k := range keys {
		fmt.Fprintf(&b, "<Object><Key>%s</Key></Object>", k)
	}
	b.WriteString("<Quiet>true</Quiet></Delete>")
	return b.Bytes()
}

func md5Base64(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestS3SendsContentMD5(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{RequireContentMD5: true})
	fx.srv.RequireFake(t)
	paths := []string{"a.txt", "b/c.txt", "b/d e.txt"}
	for _, p := range paths {
		fx.Put(t, p, []byte(p))
	}
	st := newS3(t, fx.options())
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("Check against a server that requires Content-MD5: %v", err)
	}
	for _, r := range st.Delete(context.Background(), paths) {
		if r.Outcome != cdccleaner.Deleted {
			t.Errorf("Delete(%q) = %v (err %v), want deleted", r.Path, r.Outcome, r.Err)
		}
		if fx.Exists(t, r.Path) {
			t.Errorf("%s still exists", r.Path)
		}
	}

	// The server really refuses what the storage would send without its
	// middleware: the SDK alone sends only a CRC32 checksum.
	fx.Put(t, "kept", []byte("x"))
	_, err := fx.srv.Client().DeleteObjects(context.Background(), &awss3.DeleteObjectsInput{
		Bucket: aws.String(fx.srv.Bucket()),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(fx.prefix + "kept")}}, Quiet: aws.Bool(true)},
	})
	var apiErr smithy.APIError
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "MissingContentMD5" || !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("DeleteObjects without Content-MD5 = %v, want 400 MissingContentMD5", err)
	}

	// And checks the digest, so a middleware that hashed the wrong bytes
	// would fail too.
	body := deleteObjectsBody(fx.prefix + "kept")
	tests := []struct {
		name   string
		md5    string
		status int
		code   string
	}{
		{name: "missing", status: http.StatusBadRequest, code: "MissingContentMD5"},
		{name: "not base64", md5: "not an md5!", status: http.StatusBadRequest, code: "InvalidDigest"},
		{name: "wrong", md5: md5Base64([]byte("another body")), status: http.StatusBadRequest, code: "BadDigest"},
		{name: "right", md5: md5Base64(body), status: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, fx.srv.Endpoint()+"/"+fx.srv.Bucket()+"?delete", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.md5 != "" {
				req.Header.Set("Content-MD5", tt.md5)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got bytes.Buffer
			got.ReadFrom(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(got.String(), "<Code>"+tt.code+"</Code>") && tt.code != "" {
				t.Fatalf("status %d, body %s; want %d %s", resp.StatusCode, got.String(), tt.status, tt.code)
			}
			if want := tt.status != http.StatusOK; fx.Exists(t, "kept") != want {
				t.Errorf("kept exists = %v after a %d answer", !want, resp.StatusCode)
			}
		})
	}
}

// s3Err returns the *s3.Error in err's chain, or nil.
func s3Err(err error) *s3.Error {
	var e *s3.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func TestS3PerKeyErrors(t *testing.T) {
	var flakySeen sync.Map
	fx := newS3Fixture(t, s3test.Options{
		KeyError: func(key string) (string, string) {
			switch {
			case strings.Contains(key, "denied"):
				return "AccessDenied", "Access Denied"
			case strings.Contains(key, "flaky"):
				if _, seen := flakySeen.LoadOrStore(key, true); !seen {
					return "InternalError", "We encountered an internal error. Please try again."
				}
			case strings.Contains(key, "slow"):
				if _, seen := flakySeen.LoadOrStore(key, true); !seen {
					return "SlowDown", "Please reduce your request rate."
				}
			case strings.Contains(key, "gone"):
				return "NoSuchKey", "The specified key does not exist."
			}
			return "", ""
		},
	})
	fx.srv.RequireFake(t)
	type want struct {
		outcome cdccleaner.Outcome
		reason  string // for Failed
		code    string // for Failed
		exists  bool   // afterwards
	}
	denied := want{outcome: cdccleaner.Failed, reason: "s3_access_denied", code: "AccessDenied", exists: true}
	flaky := want{outcome: cdccleaner.Failed, reason: cdccleaner.ReasonTransient, code: "InternalError", exists: true}
	slow := want{outcome: cdccleaner.Failed, reason: cdccleaner.ReasonTransient, code: "SlowDown", exists: true}
	deleted := want{outcome: cdccleaner.Deleted}
	cases := []struct {
		path string
		put  bool
		want want
	}{
		{"ok/1", true, deleted},
		{"denied/1", true, denied},
		{"flaky/1", true, flaky},
		{"ok/2", true, deleted},
		{"slow/1", true, slow},
		{"denied/2.jpg", true, denied},
		{"gone/1", false, want{outcome: cdccleaner.Absent}},
		{"denied/1", true, denied}, // twice in one batch: both answered
	}
	var paths []string
	for _, c := range cases {
		if c.put {
			fx.Put(t, c.path, []byte(c.path))
		}
		paths = append(paths, c.path)
	}
	st := newS3(t, fx.options())
	res := st.Delete(context.Background(), paths)
	if len(res) != len(paths) {
		t.Fatalf("%d results for %d paths", len(res), len(paths))
	}
	for i, c := range cases {
		r := res[i]
		if r.Path != c.path || r.Outcome != c.want.outcome {
			t.Errorf("Delete(%q) = %q %v (err %v), want %v", c.path, r.Path, r.Outcome, r.Err, c.want.outcome)
			continue
		}
		if c.want.outcome == cdccleaner.Failed {
			if got := cdccleaner.Reason(r.Err); got != c.want.reason {
				t.Errorf("Delete(%q) reason = %q, want %q (err %v)", c.path, got, c.want.reason, r.Err)
			}
			if cdccleaner.IsPermanent(r.Err) != (c.want.reason != cdccleaner.ReasonTransient) {
				t.Errorf("Delete(%q): IsPermanent = %v for reason %q", c.path, cdccleaner.IsPermanent(r.Err), c.want.reason)
			}
			if e := s3Err(r.Err); e == nil || e.Code != c.want.code {
				t.Errorf("Delete(%q) error %v does not carry S3 code %s", c.path, r.Err, c.want.code)
			}
			if !strings.Contains(r.Err.Error(), fx.prefix+c.path) {
				t.Errorf("Delete(%q) error %q does not name the key", c.path, r.Err)
			}
		} else if r.Err != nil {
			t.Errorf("Delete(%q) = %v with err %v", c.path, r.Outcome, r.Err)
		}
		if got := fx.Exists(t, c.path); got != c.want.exists {
			t.Errorf("%s exists = %v, want %v", c.path, got, c.want.exists)
		}
	}
	if n := fx.srv.Requests(s3test.OpDeleteObjects); n != 1 {
		t.Errorf("%d DeleteObjects requests for one batch, want 1 (a 200 is not retried by the SDK)", n)
	}

	// The transient ones succeed when retried, as the pipeline does.
	retry := []string{"flaky/1", "slow/1"}
	for _, r := range st.Delete(context.Background(), retry) {
		if r.Outcome != cdccleaner.Deleted {
			t.Errorf("retry of %s = %v (err %v), want deleted", r.Path, r.Outcome, r.Err)
		}
		if fx.Exists(t, r.Path) {
			t.Errorf("%s still exists after the retry", r.Path)
		}
	}
}

// settle deletes paths until every one is deleted, absent or permanently
// failed, retrying transient failures like the pipeline does, until
// deadline. It returns the permanent failures and every transient error
// seen; it never calls t.Fatal, so goroutines may use it.
func settle(st cdccleaner.Storage, paths []string, deadline time.Time, calls *atomic.Int64) (permanent, transient []error) {
	todo := paths
	for len(todo) > 0 {
		if time.Now().After(deadline) {
			return permanent, append(transient, fmt.Errorf("%d paths still unsettled at the deadline", len(todo)))
		}
		calls.Add(1)
		var again []string
		for _, r := range st.Delete(context.Background(), todo) {
			switch {
			case r.Outcome != cdccleaner.Failed:
			case cdccleaner.IsPermanent(r.Err):
				permanent = append(permanent, r.Err)
			default:
				transient = append(transient, r.Err)
				again = append(again, r.Path)
			}
		}
		todo = again
		if len(todo) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return permanent, transient
}

// noBackoff retries at once, for the control client.
type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// TestS3LongOutage: a throttling or 5xx outage far longer than the SDK's
// default retry quota allows ends with every object deleted, and no request
// ever fails for lack of retry quota.
func TestS3LongOutage(t *testing.T) {
	tests := []struct {
		name string
		// fault makes the in-process server fail a request while down()
		// returns true.
		fault func(down func() bool) s3test.Options
		// cost of one retry in the default quota
		cost uint
	}{
		{
			name: "SlowDown",
			fault: func(down func() bool) s3test.Options {
				return s3test.Options{Throttle: down}
			},
			cost: retry.DefaultThrottlingRetryCost,
		},
		{
			name: "InternalError",
			fault: func(down func() bool) s3test.Options {
				return s3test.Options{RequestError: func(string) (int, string) {
					if down() {
						return http.StatusInternalServerError, "InternalError"
					}
					return 0, ""
				}}
			},
			cost: 14, // the SDK's cost of a retry that is not throttling
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Retries the SDK's default retry quota allows before it
			// fails every request at once.
			quotaRetries := int(retry.DefaultRetryRateTokens / tt.cost)

			// Control: the SDK's default retryer does run dry under this
			// outage, so the check below means something.
			srv := s3test.Start(t, tt.fault(func() bool { return true }))
			client := awss3.NewFromConfig(aws.Config{Region: srv.Region()}, func(o *awss3.Options) {
				o.BaseEndpoint = aws.String(srv.Endpoint())
				o.UsePathStyle = true
				o.Credentials = aws.AnonymousCredentials{}
				o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
					o.MaxAttempts = 2
					o.Backoff = noBackoff{}
				})
			})
			ranDry := false
			for i := range 2 * quotaRetries {
				_, err := client.ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket())})
				if err == nil {
					t.Fatal("the control request succeeded during the outage")
				}
				var qe ratelimit.QuotaExceededError
				if errors.As(err, &qe) {
					t.Logf("control, default retryer: %v after %d failed requests", err, i)
					ranDry = i >= quotaRetries/2
					break
				}
			}
			if !ranDry {
				t.Fatalf("the default retryer did not run dry as expected after about %d retries", quotaRetries)
			}

			const workers, perWorker = 50, 2
			outage := 3 * quotaRetries // failed requests
			var failed atomic.Int64
			fx := newS3Fixture(t, tt.fault(func() bool { return failed.Add(1) <= int64(outage) }))
			fx.srv.RequireFake(t)
			opts := fx.options()
			opts.MaxAttempts = 2
			st := newS3(t, opts)
			var paths [workers][]string
			for w := range workers {
				for i := range perWorker {
					p := fmt.Sprintf("w%02d/%d.bin", w, i)
					fx.Put(t, p, []byte(p))
					paths[w] = append(paths[w], p)
				}
			}

			var calls atomic.Int64
			var mu sync.Mutex
			var permanent, transient []error
			deadline := time.Now().Add(2 * time.Minute)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					p, tr := settle(st, paths[w], deadline, &calls)
					mu.Lock()
					defer mu.Unlock()
					permanent = append(permanent, p...)
					transient = append(transient, tr...)
				})
			}
			wg.Wait()

			for _, err := range permanent {
				t.Errorf("permanent failure during the outage: %v", err)
			}
			for _, err := range transient {
				var qe ratelimit.QuotaExceededError
				if errors.As(err, &qe) || strings.Contains(err.Error(), "quota") {
					t.Errorf("retry quota error: %v", err)
				}
				if strings.Contains(err.Error(), "unsettled") {
					t.Error(err)
				}
			}
			for w := range workers {
				for _, p := range paths[w] {
					if fx.Exists(t, p) {
						t.Errorf("%s still exists after the outage", p)
					}
				}
			}
			requests := fx.srv.Requests(s3test.OpDeleteObjects)
			sdkRetries := requests - int(calls.Load()) // each Delete call here is one request, plus the SDK's retries
			t.Logf("%d DeleteObjects requests, %d failed, %d Delete calls, %d SDK retries, %d transient failures returned",
				requests, min(failed.Load(), int64(outage)), calls.Load(), sdkRetries, len(transient))
			if requests <= outage {
				t.Errorf("%d DeleteObjects requests, want more than the %d failed", requests, outage)
			}
			if sdkRetries <= quotaRetries {
				t.Errorf("the SDK retried %d times, want more than the %d the default quota allows", sdkRetries, quotaRetries)
			}
		})
	}
}

func TestS3NoSuchBucket(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	opts := srv.Options(srv.Prefix())
	opts.Bucket = "cdc-missing-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	st := newS3(t, opts)
	for _, r := range st.Delete(context.Background(), []string{"a.txt", "b/c.txt"}) {
		if r.Outcome != cdccleaner.Failed || !cdccleaner.IsPermanent(r.Err) {
			t.Fatalf("Delete(%q) in a missing bucket = %v, %v; want failed, permanent", r.Path, r.Outcome, r.Err)
		}
		if got := cdccleaner.Reason(r.Err); got != "s3_no_such_bucket" {
			t.Errorf("reason = %q, want s3_no_such_bucket (err %v)", got, r.Err)
		}
		if e := s3Err(r.Err); e == nil || e.Code != "NoSuchBucket" || e.Status != http.StatusNotFound {
			t.Errorf("error %v does not carry 404 NoSuchBucket", r.Err)
		}
	}
	if err := st.Check(context.Background()); err == nil {
		t.Error("Check on a missing bucket succeeded")
	}
}

func TestS3Chunking(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	fx.srv.RequireFake(t)
	const n = 2500
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("chunk/%04d", i)
	}
	fx.srv.PutKeys(t, fx.keys(paths[:n/2]...), []byte("x"))
	st := newS3(t, fx.options())
	for _, r := range st.Delete(context.Background(), paths) {
		if r.Outcome == cdccleaner.Failed {
			t.Fatalf("Delete(%q) = %v", r.Path, r.Err)
		}
	}
	if got := fx.srv.Requests(s3test.OpDeleteObjects); got != 3 {
		t.Errorf("%d DeleteObjects requests for %d paths, want 3", got, n)
	}
	if got := fx.srv.Requests(s3test.OpDeleteObject); got != 0 {
		t.Errorf("%d DeleteObject requests, want none", got)
	}
	received := fx.srv.ReceivedKeys()
	slices.Sort(received)
	if !slices.Equal(received, fx.keys(paths...)) {
		t.Errorf("the server received %d keys, want each of the %d exactly once", len(received), n)
	}
	if left := fx.srv.Keys(t, fx.prefix); len(left) != 0 {
		t.Errorf("%d objects left, e.g. %s", len(left), left[0])
	}
}

func TestS3ConcurrencyBound(t *testing.T) {
	tests := []struct {
		concurrency int
		want        int // most DeleteObjects in flight
	}{
		{concurrency: 1, want: 1},
		{concurrency: 2, want: 2},
		{concurrency: 0, want: 4}, // the default
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("concurrency=%d", tt.concurrency), func(t *testing.T) {
			fx := newS3Fixture(t, s3test.Options{
				Latency: func(op string) time.Duration {
					if op == s3test.OpDeleteObjects {
						return 50 * time.Millisecond
					}
					return 0
				},
			})
			opts := fx.options()
			opts.Concurrency = tt.concurrency
			st := newS3(t, opts)
			paths := make([]string, 10*s3.MaxKeysPerRequest)
			for i := range paths {
				paths[i] = fmt.Sprintf("c/%05d", i)
			}
			for _, r := range st.Delete(context.Background(), paths) {
				if r.Outcome == cdccleaner.Failed {
					t.Fatalf("Delete(%q) = %v", r.Path, r.Err)
				}
			}
			if got := fx.srv.Requests(s3test.OpDeleteObjects); got != 10 {
				t.Errorf("%d DeleteObjects requests, want 10", got)
			}
			got := fx.srv.MaxInFlight(s3test.OpDeleteObjects)
			if got > tt.want || (tt.want > 1 && got < 2) {
				t.Errorf("at most %d DeleteObjects in flight, want %d (and more than one when allowed)", got, tt.want)
			}
		})
	}
}

func TestS3Check(t *testing.T) {
	tests := []struct {
		name    string
		opts    s3test.Options
		bucket  string // overrides the server's
		wantErr string // substring; "" means success
	}{
		{name: "reachable"},
		{name: "reachable, Content-MD5 required", opts: s3test.Options{RequireContentMD5: true}},
		{name: "missing bucket", bucket: "cdc-no-such-bucket-for-check", wantErr: "reach bucket"},
		{
			name: "DeleteObjects refused",
			opts: s3test.Options{RequestError: func(op string) (int, string) {
				if op == s3test.OpDeleteObjects {
					return http.StatusForbidden, "AccessDenied"
				}
				return 0, ""
			}},
			wantErr: "AccessDenied",
		},
		{
			name: "key refused inside a 200",
			opts: s3test.Options{KeyError: func(string) (string, string) {
				return "AccessDenied", "Access Denied"
			}},
			wantErr: "AccessDenied",
		},
		{
			name: "HeadBucket refused",
			opts: s3test.Options{RequestError: func(op string) (int, string) {
				if op == s3test.OpHeadBucket {
					return http.StatusForbidden, "AccessDenied"
				}
				return 0, ""
			}},
			wantErr: "reach bucket",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newS3Fixture(t, tt.opts)
			existing := []string{"a", "b/c", ".cdc-cleaner-check-", "x"}
			for _, p := range existing {
				fx.Put(t, p, []byte(p))
			}
			before := fx.srv.Keys(t, fx.srv.Prefix())
			opts := fx.options()
			if tt.bucket != "" {
				opts.Bucket = tt.bucket
			}
			err := newS3(t, opts).Check(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Check succeeded, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check error %q does not contain %q", err, tt.wantErr)
			}
			if after := fx.srv.Keys(t, fx.srv.Prefix()); !slices.Equal(before, after) {
				t.Errorf("Check changed the bucket: before %q, after %q", before, after)
			}
			fx.checkConfined(t)
			for _, k := range fx.srv.ReceivedKeys() {
				if slices.Contains(before, k) {
					t.Errorf("Check asked to delete the existing object %q", k)
				}
			}
		})
	}
}

func TestS3Reason(t *testing.T) {
	tests := []struct{ code, want string }{
		{"AccessDenied", "s3_access_denied"},
		{"NoSuchBucket", "s3_no_such_bucket"},
		{"", "s3_unknown"},
		{"SlowDown", "s3_slow_down"},
		{"InvalidObjectState", "s3_invalid_object_state"},
		{"MissingContentMD5", "s3_missing_content_md5"},
		{"XAmzContentSHA256Mismatch", "s3_x_amz_content_sha256_mismatch"},
		{"foo.bar baz", "s3_foo_bar_baz"},
	}
	for _, tt := range tests {
		if got := s3.Reason(tt.code); got != tt.want {
			t.Errorf("s3.Reason(%q) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

// TestS3HostilePathsNeverReachServer checks that a rejected path never
// becomes a key: the server sees only the valid ones, and a batch of only
// rejected paths sends no request at all.
func TestS3HostilePathsNeverReachServer(t *testing.T) {
	hostile := []string{
		"", "/", ".", "..", "../x", "../../etc/passwd", "/etc/passwd", "/../x",
		"a/../../x", "a/../b", "a/..", "a/.", "./a", "a//b", "a/", "a\x00b", "a\x00",
		"../store/x", "../" + strings.Repeat("../", 50) + "x",
	}
	fx := newS3Fixture(t, s3test.Options{})
	fx.srv.RequireFake(t)
	outside := fx.PutOutside(t, "x")
	st := newS3(t, fx.options())

	for _, r := range st.Delete(context.Background(), hostile) {
		if r.Outcome != cdccleaner.Failed || cdccleaner.Reason(r.Err) != cdccleaner.ReasonRejectedPath {
			t.Errorf("Delete(%q) = %v, %v; want failed, rejected_path", r.Path, r.Outcome, r.Err)
		}
	}
	if got := fx.srv.ReceivedKeys(); len(got) != 0 {
		t.Errorf("rejected paths reached the server as %q", got)
	}
	if n := fx.srv.Requests(s3test.OpDeleteObjects); n != 0 {
		t.Errorf("%d DeleteObjects requests for rejected paths only, want 0", n)
	}

	fx.Put(t, "ok", []byte("ok"))
	mixed := append([]string{"ok"}, hostile...)
	res := st.Delete(context.Background(), mixed)
	if res[0].Outcome != cdccleaner.Deleted {
		t.Errorf("Delete(ok) = %v, %v", res[0].Outcome, res[0].Err)
	}
	if got, want := fx.srv.ReceivedKeys(), fx.keys("ok"); !slices.Equal(got, want) {
		t.Errorf("the server received %q, want only %q", got, want)
	}
	if !outside() {
		t.Error("the object outside the storage prefix was deleted")
	}
}

// TestS3ConnectionResetIsRetried: the SDK retries a DeleteObjects whose
// connection was reset, within the same Delete call.
func TestS3ConnectionResetIsRetried(t *testing.T) {
	var resets atomic.Int64
	fx := newS3Fixture(t, s3test.Options{Reset: func(op string) bool {
		return op == s3test.OpDeleteObjects && resets.Add(1) == 1
	}})
	fx.Put(t, "r", []byte("r"))
	r := newS3(t, fx.options()).Delete(context.Background(), []string{"r"})[0]
	if r.Outcome != cdccleaner.Deleted {
		t.Fatalf("Delete after a connection reset = %v, %v; want deleted", r.Outcome, r.Err)
	}
	if fx.Exists(t, "r") {
		t.Error("r still exists")
	}
	if n := fx.srv.Requests(s3test.OpDeleteObjects); n != 2 {
		t.Errorf("%d DeleteObjects requests, want 2 (one reset, one retry)", n)
	}
}

// TestS3HangingServerIsTransient: a server that does not answer within
// RequestTimeout gives a transient failure and deletes nothing.
func TestS3HangingServerIsTransient(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{Latency: func(op string) time.Duration {
		if op == s3test.OpDeleteObjects {
			return time.Minute
		}
		return 0
	}})
	fx.Put(t, "h", []byte("h"))
	opts := fx.options()
	opts.RequestTimeout = 200 * time.Millisecond
	start := time.Now()
	r := newS3(t, opts).Delete(context.Background(), []string{"h"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) {
		t.Fatalf("Delete against a hanging server = %v, %v; want failed, transient", r.Outcome, r.Err)
	}
	if !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", r.Err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Delete took %v with RequestTimeout 200ms", d)
	}
	if !fx.Exists(t, "h") {
		t.Error("h was deleted")
	}
}

// TestS3RequestErrors: request-level 5xx, throttling and credential trouble are
// transient after the SDK's attempts; 4xx are permanent with the code as
// reason.
func TestS3RequestErrors(t *testing.T) {
	tests := []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusInternalServerError, "InternalError", false},
		{http.StatusServiceUnavailable, "ServiceUnavailable", false},
		{http.StatusBadGateway, "BadGateway", false},
		{http.StatusTooManyRequests, "TooManyRequests", false},
		{http.StatusForbidden, "RequestTimeTooSkewed", false},
		{http.StatusForbidden, "InvalidAccessKeyId", false},
		{http.StatusForbidden, "AccessDenied", true},
		{http.StatusBadRequest, "InvalidRequest", true},
		{http.StatusMethodNotAllowed, "MethodNotAllowed", true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			fx := newS3Fixture(t, s3test.Options{RequestError: func(op string) (int, string) {
				if op == s3test.OpDeleteObjects {
					return tt.status, tt.code
				}
				return 0, ""
			}})
			fx.Put(t, "e", []byte("e"))
			opts := fx.options()
			opts.MaxAttempts = 1 // the classification, not the SDK's retries
			r := newS3(t, opts).Delete(context.Background(), []string{"e"})[0]
			if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) != tt.permanent {
				t.Fatalf("Delete = %v, %v; want failed, permanent=%v", r.Outcome, r.Err, tt.permanent)
			}
			if tt.permanent {
				if got, want := cdccleaner.Reason(r.Err), s3.Reason(tt.code); got != want {
					t.Errorf("reason = %q, want %q", got, want)
				}
			}
			if e := s3Err(r.Err); e == nil || e.Code != tt.code || e.Status != tt.status {
				t.Errorf("error %v does not carry %d %s", r.Err, tt.status, tt.code)
			}
			if !fx.Exists(t, "e") {
				t.Error("e was deleted")
			}
		})
	}
}

// TestS3MissingObjectIsDeleted: DeleteObjects answers the same for a
// missing key as for a deleted one, so S3 reports Deleted for both (the
// fixture says so to the contract, through CannotTellAbsent).
func TestS3MissingObjectIsDeleted(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	r := newS3(t, fx.options()).Delete(context.Background(), []string{"never/existed.jpg"})[0]
	if r.Outcome != cdccleaner.Deleted || r.Err != nil {
		t.Errorf("Delete of a missing object = %v (err %v), want deleted", r.Outcome, r.Err)
	}
}

// TestS3KeysXMLCannotCarry: ValidatePath lets control characters (other
// than NUL) and invalid UTF-8 through, but the SDK's XML encoder replaces
// what XML 1.0 cannot carry with U+FFFD, so in a DeleteObjects request such
// a key would name another object. They must be deleted one by one, with
// the key in the URL, and never touch the other object.
func TestS3KeysXMLCannotCarry(t *testing.T) {
	tests := []struct{ name, path string }{
		{"control character", "ctl/a\x01b"},
		{"escape", "ctl/a\x1bb"},
		{"invalid UTF-8", "ctl/a\xffb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newS3Fixture(t, s3test.Options{})
			other := "ctl/a\uFFFDb"
			fx.Put(t, tt.path, []byte("target"))
			fx.Put(t, other, []byte("someone else's file"))
			r := newS3(t, fx.options()).Delete(context.Background(), []string{tt.path})[0]
			if !fx.Exists(t, other) {
				t.Errorf("Delete(%q) = %v deleted %q, another object", tt.path, r.Outcome, other)
			}
			switch gone := !fx.Exists(t, tt.path); {
			case r.Outcome == cdccleaner.Deleted && !gone:
				t.Errorf("Delete(%q) = deleted, but the object is still there", tt.path)
			case r.Outcome == cdccleaner.Failed && gone:
				t.Errorf("Delete(%q) = failed, but the object is gone", tt.path)
			}
		})
	}
}

// TestS3TrashPlusInKey: S3-compatible servers (gofakes3, MinIO) decode
// CopySource like a query string, where "+" is a space, so "+" must be
// escaped; otherwise "a+b.txt" would be copied from "a b.txt" and the trash
// would hold the wrong file.
func TestS3TrashPlusInKey(t *testing.T) {
	tests := []struct {
		name   string
		others map[string]string // path: content
	}{
		{name: "alone"},
		{name: "next to a key with a space", others: map[string]string{"d/a b.txt": "another file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newS3Fixture(t, s3test.Options{})
			const path = "d/a+b.txt"
			fx.Put(t, path, []byte("the file"))
			for p, c := range tt.others {
				fx.Put(t, p, []byte(c))
			}
			opts := fx.options()
			opts.Trash, opts.TrashPrefix = true, ".trash/"
			r := newS3(t, opts).Delete(context.Background(), []string{path})[0]
			if r.Outcome != cdccleaner.Deleted {
				t.Errorf("Delete(%q) in trash mode = %v (err %v), want deleted", path, r.Outcome, r.Err)
			}
			if fx.Exists(t, path) {
				t.Errorf("%s still exists", path)
			}
			if fx.Exists(t, ".trash/"+path) {
				if got := fx.srv.Get(t, fx.prefix+".trash/"+path); string(got) != "the file" {
					t.Errorf("the trash holds %q for %s, want %q", got, path, "the file")
				}
			} else if r.Outcome == cdccleaner.Deleted || !fx.Exists(t, path) {
				t.Errorf("%s is not in the trash", path)
			}
			for p, c := range tt.others {
				if got := fx.srv.Get(t, fx.prefix+p); string(got) != c {
					t.Errorf("%s = %q, want %q", p, got, c)
				}
			}
		})
	}
}

package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// MaxKeysPerRequest is the most keys one DeleteObjects request may carry.
const MaxKeysPerRequest = 1000

// Options configures a Storage.
type Options struct {
	Bucket    string
	Prefix    string // object key = Prefix + path
	Region    string // empty: from the standard AWS chain (AWS_REGION, shared config)
	Endpoint  string // S3-compatible servers: http(s)://host:port
	PathStyle bool
	// Concurrency is how many DeleteObjects requests may be in flight at
	// once (default 4).
	Concurrency int
	// RequestTimeout bounds one request, so a hanging endpoint becomes a
	// transient error the caller retries (default 60s).
	RequestTimeout time.Duration
	// MaxAttempts is how often the SDK tries one request before the error
	// reaches the caller, who retries again with its own backoff (default 5).
	MaxAttempts int
	// HTTPClient replaces the SDK's HTTP client (tests).
	HTTPClient *http.Client
	// Trash, when set, copies each object to Prefix+TrashPrefix+path and
	// then deletes the original, only if it is still the object copied
	// (see Delete); PurgeTrash removes trashed objects later.
	Trash bool
	// TrashPrefix is where trashed objects go, relative to Prefix and
	// ending in "/", e.g. ".trash/".
	TrashPrefix string
	// Log receives what the storage decides on its own: a new upload left
	// in place while it was trashing, a server without conditional
	// deletes. The zero Logger logs nothing.
	Log zerolog.Logger
}

// Storage is a cdccleaner.Storage on a prefix of one bucket: it deletes
// objects with batched DeleteObjects requests.
type Storage struct {
	client *awss3.Client
	opts   Options
	// unconditional is set once the server refused a conditional delete:
	// from then on originals of trashed objects are deleted without a
	// condition (see fallBack).
	unconditional atomic.Bool
	warnRefused   sync.Once // the server refused a condition
	warnNoETag    sync.Once // a copy came without its ETag
	// listPageSize, when set, asks listings for pages of at most that
	// many keys instead of the server's default (1000 on S3): tests
	// make several pages of a few keys.
	listPageSize int32
}

var (
	_ cdccleaner.Storage  = (*Storage)(nil)
	_ cdccleaner.Lister   = (*Storage)(nil)
	_ cdccleaner.Statter  = (*Storage)(nil)
	_ cdccleaner.Trasher  = (*Storage)(nil)
	_ cdccleaner.Restorer = (*Storage)(nil)

	_ cdccleaner.PrefixLister = (*Storage)(nil)
)

// New builds the client from the standard AWS credential chain
// (environment, shared config and credentials files, web identity, ECS
// task role, EC2 instance role) and the options. It does not contact the
// server; Check does.
func New(ctx context.Context, opts Options) (*Storage, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3 storage needs a bucket")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Trash {
		if err := cdccleaner.ValidatePath(strings.TrimSuffix(opts.TrashPrefix, "/")); err != nil || !strings.HasSuffix(opts.TrashPrefix, "/") {
			return nil, fmt.Errorf("trash prefix %q must be a relative path ending in /", opts.TrashPrefix)
		}
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			// The default retryer draws from a token bucket that runs dry
			// during a long outage and then fails every request at once;
			// the pipeline retries without limit anyway, so no quota.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = 20 * time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		// S3-compatible servers rarely care; AWS needs the bucket's region.
		cfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// Since early 2025 the SDK adds CRC32 checksums to every request
		// and validates them on responses; many S3-compatible servers
		// reject or mangle those. Only where the API requires one.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Storage{client: client, opts: opts}, nil
}

// Client returns the underlying client, for tests and tools that share the
// configuration.
func (s *Storage) Client() *awss3.Client { return s.client }

// Key returns the object key of path.
func (s *Storage) Key(path string) string { return s.opts.Prefix + path }

// Delete removes the objects of paths, up to MaxKeysPerRequest keys per
// DeleteObjects request and Concurrency requests at once, and returns one
// Result per path, in order. S3 does not say whether a key existed, so a
// missing object is reported as Deleted (deleting it is still a success).
// A path that fails cdccleaner.ValidatePath never becomes a key.
//
// With trash on, an object is copied to the trash and its original is
// then deleted only if it is still the object copied: the delete carries
// the copy's ETag, so that a new upload to the key between the copy and
// the delete is not deleted. That new upload is left in place and the
// path is reported Deleted, with Result.Trash naming the copy of the old
// content (see recheck for an ETag that differs for the same object). A
// server that refuses conditional deletes gets unconditional ones from
// then on, with one warning that the race is then open (see fallBack).
func (s *Storage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	results := make([]cdccleaner.Result, len(paths))
	var idx []int // positions of valid paths
	for i, p := range paths {
		results[i].Path = p
		if err := cdccleaner.ValidatePath(p); err != nil {
			results[i].Outcome, results[i].Err = cdccleaner.Failed, err
			continue
		}
		idx = append(idx, i)
	}
	var copies []copied // by position in paths; nil with trash off
	if s.opts.Trash {
		idx, copies = s.copyToTrash(ctx, paths, idx, results)
	}
	// A key XML cannot carry would reach the server as another key inside
	// a DeleteObjects body; such keys go one by one, in the URL.
	var single []int
	batched := idx[:0:0]
	for _, i := range idx {
		if xmlSafe(s.Key(paths[i])) {
			batched = append(batched, i)
		} else {
			single = append(single, i)
		}
	}
	idx = batched
	g := new(errgroup.Group)
	g.SetLimit(s.opts.Concurrency)
	for _, i := range single {
		g.Go(func() error {
			s.deleteOne(ctx, paths[i], copyOf(copies, i), &results[i])
			return nil
		})
	}
	for start := 0; start < len(idx); start += MaxKeysPerRequest {
		chunk := idx[start:min(start+MaxKeysPerRequest, len(idx))]
		g.Go(func() error {
			s.deleteChunk(ctx, paths, chunk, results, copies)
			return nil
		})
	}
	g.Wait()
	for i := range results {
		if results[i].Outcome == cdccleaner.Failed {
			results[i].Trash = "" // the object is still at its path
		}
	}
	return results
}

// deleteChunk sends one DeleteObjects request for paths[i], i in chunk,
// and fills their results. copies holds what copyToTrash copied (nil with
// trash off): the original of a copied object is deleted only if its ETag
// is still the copy's, and a key whose ETag differs is looked at again
// (recheck).
func (s *Storage) deleteChunk(ctx context.Context, paths []string, chunk []int, results []cdccleaner.Result, copies []copied) {
	fail := func(err error) {
		for _, i := range chunk {
			results[i].Outcome, results[i].Err = cdccleaner.Failed, fmt.Errorf("delete s3://%s/%s: %w", s.opts.Bucket, s.Key(paths[i]), err)
		}
	}
	if err := ctx.Err(); err != nil {
		fail(err)
		return
	}
	objects := make([]types.ObjectIdentifier, len(chunk))
	byKey := make(map[string][]int, len(chunk))
	sent := make(map[int]bool) // positions deleted on a condition
	for n, i := range chunk {
		key := s.Key(paths[i])
		objects[n] = types.ObjectIdentifier{Key: aws.String(key)}
		if etag := s.condition(copyOf(copies, i)); etag != "" {
			objects[n].ETag = aws.String(etag)
			sent[i] = true
		}
		byKey[key] = append(byKey[key], i)
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	out, err := s.client.DeleteObjects(rctx, &awss3.DeleteObjectsInput{
		Bucket: aws.String(s.opts.Bucket),
		Delete: &types.Delete{Objects: objects, Quiet: aws.Bool(true)},
	}, withContentMD5)
	if err != nil {
		if len(sent) > 0 && conditionRefused(err) {
			s.fallBack(err)
			s.deleteChunk(ctx, paths, chunk, results, copies) // now without conditions
			return
		}
		fail(classifyS3(err))
		return
	}
	// A 200 response can still refuse some keys: examine every one.
	refused := make(map[int]types.Error)
	for _, e := range out.Errors {
		for _, i := range byKey[aws.ToString(e.Key)] {
			refused[i] = e
		}
	}
	var recheck, again []int
	for _, i := range chunk {
		results[i].Outcome = cdccleaner.Deleted
		e, ok := refused[i]
		if !ok {
			continue
		}
		code, msg := aws.ToString(e.Code), aws.ToString(e.Message)
		switch {
		case code == "NoSuchKey" && sent[i]:
			// Copied, then gone before the delete: the trash holds it.
		case code == "NoSuchKey":
			results[i].Outcome = cdccleaner.Absent
		case code == "PreconditionFailed" && sent[i]:
			recheck = append(recheck, i)
		case sent[i] && refusesCondition(code, msg, 0):
			s.fallBack(&Error{Code: code, Message: msg})
			again = append(again, i)
		default:
			results[i].Outcome = cdccleaner.Failed
			results[i].Err = keyError(s.opts.Bucket, aws.ToString(e.Key), code, msg)
		}
	}
	if len(again) > 0 {
		s.deleteChunk(ctx, paths, again, results, copies) // now without conditions
	}
	g := new(errgroup.Group)
	g.SetLimit(s.opts.Concurrency * 4) // one request at a time per key
	for _, i := range recheck {
		g.Go(func() error {
			s.recheck(ctx, paths[i], copies[i], &results[i])
			return nil
		})
	}
	g.Wait()
}

// deleteOne deletes one key with DeleteObject, whose key travels in the
// URL: for keys that an XML body cannot carry. c is its copy in the trash
// (zero when none was made): the delete is then conditional, as in
// deleteChunk.
func (s *Storage) deleteOne(ctx context.Context, path string, c copied, r *cdccleaner.Result) {
	etag := s.condition(c)
	err := s.deleteObject(ctx, s.Key(path), etag)
	switch {
	case err == nil:
		r.Outcome = cdccleaner.Deleted
	case etag != "" && isNoSuchKey(err):
		r.Outcome = cdccleaner.Deleted // copied, then gone: the trash holds it
	case etag != "" && isPreconditionFailed(err):
		r.Outcome = cdccleaner.Deleted
		s.recheck(ctx, path, c, r)
	case etag != "" && conditionRefused(err):
		s.fallBack(err)
		s.deleteOne(ctx, path, c, r) // now without a condition
	default:
		r.Outcome, r.Err = cdccleaner.Failed, fmt.Errorf("delete s3://%s/%s: %w", s.opts.Bucket, s.Key(path), classifyS3(err))
	}
}

// deleteObject sends DeleteObject for key, with If-Match: etag unless etag
// is "".
func (s *Storage) deleteObject(ctx context.Context, key, etag string) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	in := &awss3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	_, err := s.client.DeleteObject(rctx, in)
	return err
}

// copied is what CopyObject answered for an object copied to the trash.
type copied struct {
	etag string    // the copy's ETag; "" when the object was not copied
	at   time.Time // when the server made the copy; zero when it did not say
}

// copyOf returns copies[i], or the zero copied when copies is nil.
func copyOf(copies []copied, i int) copied {
	if copies == nil {
		return copied{}
	}
	return copies[i]
}

// condition returns the ETag the original of c must still have to be
// deleted, or "" for an unconditional delete (nothing was copied, or the
// server refuses conditions).
func (s *Storage) condition(c copied) string {
	if s.unconditional.Load() {
		return ""
	}
	return c.etag
}

// recheck decides about the original of a trashed object whose
// conditional delete found another ETag (412). The copy's ETag equals the
// source's for an object uploaded in one part, but not for one uploaded
// in parts (or encrypted with KMS), so a 412 does not by itself mean a
// new upload. A HEAD tells:
//
//   - nothing at the key: it is gone, the trash holds the copy (Deleted);
//   - an object modified in the second of the copy or later (the server's
//     Last-Modified has one-second resolution): a new upload landed; it is
//     left in place (Deleted: the trash holds the old content, and a row
//     that references the path again finds the new upload);
//   - an older object the size of the trash copy: the object copied, with
//     another ETag. It is deleted on the ETag the HEAD returned, so that an
//     upload after the HEAD still wins (412: left in place).
//
// The size is compared because S3 dates an object uploaded in parts from
// the start of its upload: a large upload begun before the copy and
// finished after it looks older than the copy. One of another size is
// left in place; one of the same size with other content would be deleted
// (its old content is in the trash).
//
// r is Deleted with Trash set when recheck is called; a failed look or
// delete makes it Failed (the object is still at its path).
func (s *Storage) recheck(ctx context.Context, path string, c copied, r *cdccleaner.Result) {
	key := s.Key(path)
	failed := func(format string, err error) {
		r.Outcome, r.Err = cdccleaner.Failed, fmt.Errorf(format, s.opts.Bucket, key, err)
	}
	cur, err := s.head(ctx, key)
	switch {
	case err != nil:
		failed("look at s3://%s/%s, whose delete after its copy to the trash found another ETag: %w", err)
		return
	case !cur.found:
		return
	case !cur.olderThan(c.at):
		s.leftInPlace(path, r, "modified in the second of the copy or later")
		return
	case cur.etag == "":
		s.leftInPlace(path, r, "the server gave no ETag to delete it on")
		return
	}
	trash, err := s.head(ctx, s.Key(r.Trash))
	switch {
	case err != nil:
		failed("look at the trashed copy of s3://%s/%s: %w", err)
		return
	case !trash.found:
		failed("look at the trashed copy of s3://%s/%s: %w", fmt.Errorf("s3://%s/%s is missing", s.opts.Bucket, s.Key(r.Trash)))
		return
	case cur.size < 0 || cur.size != trash.size:
		s.leftInPlace(path, r, "its size differs from the copy's")
		return
	}
	err = s.deleteObject(ctx, key, cur.etag)
	switch {
	case err == nil, isNoSuchKey(err):
	case isPreconditionFailed(err):
		s.leftInPlace(path, r, "replaced after it was looked at")
	case conditionRefused(err):
		s.fallBack(err)
		if err := s.deleteObject(ctx, key, ""); err != nil {
			failed("delete s3://%s/%s: %w", classifyS3(err))
		}
	default:
		failed("delete s3://%s/%s: %w", classifyS3(err))
	}
}

// leftInPlace records that the object at path, a new upload, was not
// deleted: r stays Deleted, with the trash holding the old content.
func (s *Storage) leftInPlace(path string, r *cdccleaner.Result, why string) {
	s.opts.Log.Info().Str("path", path).Str("trash", r.Trash).Str("why", why).
		Msg("a new upload replaced the object while it was being trashed; it was left alone, and the trash holds the old content")
}

// fallBack turns conditional deletes off for the rest of the storage's
// life, after the server refused one (err), and warns once.
func (s *Storage) fallBack(err error) {
	s.unconditional.Store(true)
	s.warnUnconditional(&s.warnRefused, "the server refuses conditional deletes", err)
}

// warnUnconditional warns, once per storage and reason, that originals of
// trashed objects are deleted without a condition, and why.
func (s *Storage) warnUnconditional(once *sync.Once, why string, err error) {
	once.Do(func() {
		s.opts.Log.Warn().Err(err).Str("bucket", s.opts.Bucket).Str("prefix", s.opts.Prefix).
			Msgf("%s: the original of a trashed object is deleted unconditionally, so a new upload to its key between the copy to the trash and that delete is deleted too (the trash keeps the old content)", why)
	})
}

// conditionRefused reports whether err is a server's refusal of a
// conditional delete it does not support (see refusesCondition).
func conditionRefused(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return refusesCondition(apiErr.ErrorCode(), apiErr.ErrorMessage(), status)
}

// refusesCondition reports whether an error code and message (and HTTP
// status, 0 for a per-key error) answer a conditional delete on a server
// that does not support the condition: NotImplemented, or a refusal of
// the request that names the condition (an InvalidArgument about
// If-Match or the ETag).
func refusesCondition(code, msg string, status int) bool {
	if code == "NotImplemented" || status == http.StatusNotImplemented {
		return true
	}
	switch code {
	case "InvalidArgument", "InvalidRequest", "MalformedXML", "NotSupported":
		m := strings.ToLower(msg)
		return strings.Contains(m, "etag") || strings.Contains(m, "if-match") || strings.Contains(m, "condition")
	}
	return false
}

// xmlSafe reports whether key survives an XML 1.0 document unchanged:
// valid UTF-8 without control characters (a carriage return would even be
// normalised to a newline) and without the non-characters U+FFFE, U+FFFF.
func xmlSafe(key string) bool {
	if !utf8.ValidString(key) {
		return false
	}
	for _, r := range key {
		if r < 0x20 && r != '\t' && r != '\n' || r == '\r' || r == 0x7f || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// Error is an error the server returned, with its code.
type Error struct {
	Code    string // e.g. "AccessDenied", "SlowDown"
	Message string
	Status  int // HTTP status, 0 for per-key errors inside a 200
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "s3 " + e.Code
	}
	return fmt.Sprintf("s3 %s: %s", e.Code, e.Message)
}

// transientS3Codes are codes worth retrying: throttling, server trouble, and
// credential or clock trouble that an operator fixes without losing work.
var transientS3Codes = map[string]bool{
	"SlowDown": true, "ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "TooManyRequests": true,
	"RequestTimeTooSkewed": true, "ExpiredToken": true, "TokenRefreshRequired": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "OperationAborted": true,
	// A conditional write met a concurrent one; S3 says to retry.
	"ConditionalRequestConflict": true,
}

// keyError classifies a per-key error of a DeleteObjects response.
func keyError(bucket, key, code, msg string) error {
	err := fmt.Errorf("delete s3://%s/%s: %w", bucket, key, &Error{Code: code, Message: msg})
	if transientS3Codes[code] {
		return err
	}
	return cdccleaner.Permanent(Reason(code), err)
}

// classifyS3 turns a request error into a permanent error (4xx such as
// AccessDenied or NoSuchBucket: recorded, never retried) or leaves it
// transient (throttling, 5xx, timeouts, connection errors, credentials).
func classifyS3(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err // network, timeout, canceled: transient
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := apiErr.ErrorCode()
	wrapped := fmt.Errorf("%w (%v)", &Error{Code: code, Message: apiErr.ErrorMessage(), Status: status}, err)
	switch {
	case transientS3Codes[code], status >= 500, status == 429, status == 408, status == 0:
		return wrapped
	case status >= 400:
		return cdccleaner.Permanent(Reason(code), wrapped)
	}
	return wrapped
}

// Reason turns an S3 error code into a failure reason: "s3_" and the code
// in snake case, e.g. "s3_access_denied", "s3_no_such_bucket".
func Reason(code string) string {
	if code == "" {
		return "s3_unknown"
	}
	var b strings.Builder
	b.WriteString("s3_")
	rs := []rune(code)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			// A word starts at an upper-case letter after a lower-case one
			// or a digit ("AccessDenied", "SHA256Mismatch"), or at the last
			// capital of an acronym followed by a lower-case letter
			// ("XAmz").
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
				b.WriteByte('_')
			}
		}
		if r == '.' || r == ' ' || r == '-' {
			r = '_'
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// withContentMD5 adds a Content-MD5 header to a request: DeleteObjects
// requires an integrity header and the SDK now sends only a CRC32 one,
// which older MinIO, OCI and other S3-compatible servers refuse.
func withContentMD5(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("cdcCleanerContentMD5",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if ok && req.Header.Get("Content-MD5") == "" {
					if stream := req.GetStream(); stream != nil {
						body, err := io.ReadAll(stream)
						if err != nil {
							return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("read request body for Content-MD5: %w", err)
						}
						sum := md5.Sum(body)
						req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
						if req, err = req.SetStream(bytes.NewReader(body)); err != nil {
							return middleware.BuildOutput{}, middleware.Metadata{}, err
						}
						in.Request = req
					}
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	})
}

// Check verifies that the bucket is reachable and that the credentials may
// delete under the prefix, without deleting anything that exists: it asks
// to delete a key that cannot exist (a random name under the prefix).
func (s *Storage) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(s.opts.Bucket)}); err != nil {
		return fmt.Errorf("reach bucket %q: %w", s.opts.Bucket, err)
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	key := s.opts.Prefix + ".cdc-cleaner-check-" + hex.EncodeToString(rnd[:])
	out, err := s.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
		Bucket: aws.String(s.opts.Bucket),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}}, Quiet: aws.Bool(true)},
	}, withContentMD5)
	if err != nil {
		return fmt.Errorf("test delete permission on s3://%s/%s (a key that does not exist): %w", s.opts.Bucket, key, err)
	}
	for _, e := range out.Errors {
		if aws.ToString(e.Code) != "NoSuchKey" {
			return fmt.Errorf("test delete permission on s3://%s/%s: %w", s.opts.Bucket, key, &Error{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)})
		}
	}
	return nil
}

// copyToTrash copies the objects of paths[i], i in idx (those not already
// in the trash), to the trash, and returns the positions whose original may
// now be deleted: copied ones, with their Result.Trash set, and ones
// already in the trash; and, by position in paths, what each copy was
// (its ETag and time, for the conditional delete of the original). A
// missing object is Absent, with Result.Trash set when the trash holds its
// copy (an earlier attempt copied it and deleted the original, then
// crashed before the journal write); a failed copy, or a failed look for
// that copy, fails its path (nothing is deleted).
func (s *Storage) copyToTrash(ctx context.Context, paths []string, idx []int, results []cdccleaner.Result) ([]int, []copied) {
	ok := make([]bool, len(paths))
	copies := make([]copied, len(paths))
	g := new(errgroup.Group)
	g.SetLimit(s.opts.Concurrency * 4) // copies are one request per key
	for _, i := range idx {
		if strings.HasPrefix(paths[i], s.opts.TrashPrefix) {
			ok[i] = true // already trashed: delete for real
			continue
		}
		g.Go(func() error {
			src := s.Key(paths[i])
			trash := s.opts.TrashPrefix + paths[i]
			rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
			defer cancel()
			out, err := s.client.CopyObject(rctx, &awss3.CopyObjectInput{
				Bucket:     aws.String(s.opts.Bucket),
				Key:        aws.String(s.Key(trash)),
				CopySource: aws.String(s.copySource(src)),
			})
			switch {
			case err == nil:
				ok[i] = true
				results[i].Trash = trash
				if res := out.CopyObjectResult; res != nil {
					copies[i] = copied{etag: aws.ToString(res.ETag), at: aws.ToTime(res.LastModified)}
				}
				if copies[i].etag == "" {
					s.warnUnconditional(&s.warnNoETag, "the server's CopyObject answer carries no ETag", fmt.Errorf("copy s3://%s/%s to the trash: no ETag", s.opts.Bucket, src))
				}
			case isNoSuchKey(err):
				results[i].Outcome = cdccleaner.Absent
				found, err := s.exists(ctx, s.Key(trash))
				switch {
				case err != nil:
					results[i].Outcome = cdccleaner.Failed
					results[i].Err = fmt.Errorf("look for s3://%s/%s, the trashed copy of a missing object: %w", s.opts.Bucket, s.Key(trash), err)
				case found:
					results[i].Trash = trash
				}
			default:
				results[i].Outcome = cdccleaner.Failed
				results[i].Err = fmt.Errorf("copy s3://%s/%s to the trash: %w", s.opts.Bucket, src, classifyS3(err))
			}
			return nil
		})
	}
	g.Wait()
	var out []int
	for _, i := range idx {
		if ok[i] {
			out = append(out, i)
		}
	}
	return out, copies
}

// copySource is the CopySource of key: the bucket and the key, escaped.
func (s *Storage) copySource(key string) string {
	return url.PathEscape(s.opts.Bucket) + "/" + escapeKey(key)
}

// isNoSuchKey reports whether err is S3's answer for a missing object.
func isNoSuchKey(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound")
}

// exists reports whether the object key exists, with HeadObject. A 404 is
// false; other errors are classified as classifyS3 does.
func (s *Storage) exists(ctx context.Context, key string) (bool, error) {
	h, err := s.head(ctx, key)
	return h.found, err
}

// objectHead is what HeadObject said about an object.
type objectHead struct {
	found    bool
	etag     string
	modified time.Time // zero when the server did not say
	size     int64     // -1 when the server did not say
}

// olderThan reports whether the object was last modified in a second
// before t's (Last-Modified has one-second resolution); false when either
// time is unknown.
func (h objectHead) olderThan(t time.Time) bool {
	return !h.modified.IsZero() && !t.IsZero() && h.modified.Unix() < t.Unix()
}

// head looks at the object key with HeadObject. A 404 is not found; other
// errors are classified as classifyS3 does.
func (s *Storage) head(ctx context.Context, key string) (objectHead, error) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	out, err := s.client.HeadObject(rctx, &awss3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
	var re *smithyhttp.ResponseError
	switch {
	case err == nil:
		h := objectHead{found: true, etag: aws.ToString(out.ETag), modified: aws.ToTime(out.LastModified), size: -1}
		if out.ContentLength != nil {
			h.size = *out.ContentLength
		}
		return h, nil
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return objectHead{}, nil
	}
	return objectHead{}, classifyS3(err)
}

// escapeKey URL-encodes each segment of an object key for CopySource.
// Servers decode CopySource like a query string, where "+" means a space,
// so "+" is escaped too (url.PathEscape leaves it).
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = strings.ReplaceAll(url.PathEscape(seg), "+", "%2B")
	}
	return strings.Join(segs, "/")
}

// PurgeTrash implements cdccleaner.Trasher: it lists Prefix+TrashPrefix page
// by page and deletes objects last modified (copied into the trash) before
// cutoff.
func (s *Storage) PurgeTrash(ctx context.Context, cutoff time.Time) (int, error) {
	if !s.opts.Trash {
		return 0, nil
	}
	purged := 0
	pages := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(s.opts.Bucket),
		Prefix: aws.String(s.opts.Prefix + s.opts.TrashPrefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return purged, fmt.Errorf("list trash s3://%s/%s%s: %w", s.opts.Bucket, s.opts.Prefix, s.opts.TrashPrefix, err)
		}
		var old []string
		for _, o := range page.Contents {
			if o.LastModified == nil || !o.LastModified.Before(cutoff) {
				continue
			}
			p := strings.TrimPrefix(aws.ToString(o.Key), s.opts.Prefix)
			if !xmlSafe(aws.ToString(o.Key)) {
				var r cdccleaner.Result
				s.deleteOne(ctx, p, copied{}, &r)
				if r.Err != nil {
					return purged, fmt.Errorf("purge trash: %w", r.Err)
				}
				purged++
				continue
			}
			old = append(old, p)
		}
		if len(old) == 0 {
			continue
		}
		idx := make([]int, len(old))
		for i := range idx {
			idx[i] = i
		}
		results := make([]cdccleaner.Result, len(old))
		s.deleteChunk(ctx, old, idx, results, nil)
		for _, r := range results {
			if r.Outcome == cdccleaner.Deleted {
				purged++
			} else if r.Err != nil {
				return purged, fmt.Errorf("purge trash: %w", r.Err)
			}
		}
	}
	return purged, nil
}

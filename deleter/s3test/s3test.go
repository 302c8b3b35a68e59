package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/sync/errgroup"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
)

// Environment variables that point the tests at an external server.
const (
	// EnvEndpoint is the URL of an external S3-compatible server, e.g.
	// http://127.0.0.1:9000 (MinIO from docker-compose). Credentials and
	// region come from the usual AWS_* variables.
	EnvEndpoint = "CDC_TEST_S3_ENDPOINT"
	// EnvBucket names the bucket to use on the external server (default
	// DefaultBucket); it is created when missing.
	EnvBucket = "CDC_TEST_S3_BUCKET"
)

// DefaultBucket is the bucket of the in-process server, and of an external
// one when EnvBucket is not set.
const DefaultBucket = "cdc-cleaner-test"

// Credentials and region of the in-process server, which accepts any.
const (
	fakeAccessKey = "cdc-test-access-key"
	fakeSecretKey = "cdc-test-secret-key"
	fakeRegion    = "us-east-1"
)

// Operation names counted by Server.Requests and Server.MaxInFlight, as the
// S3 API calls them.
const (
	OpDeleteObjects = "DeleteObjects"
	OpDeleteObject  = "DeleteObject"
	OpHeadBucket    = "HeadBucket"
	OpPutObject     = "PutObject"
	OpCopyObject    = "CopyObject"
	OpHeadObject    = "HeadObject"
	OpGetObject     = "GetObject"
	OpListObjects   = "ListObjects" // V1 and V2
)

// Options are the faults of the in-process server; the zero value has none.
// They apply only to requests that reach the server over HTTP, never to the
// Server's own helpers (Put, Exists, Keys), which go to the backend directly.
// The functions are called from the server's goroutines, concurrently.
type Options struct {
	// RequireContentMD5 refuses a DeleteObjects request without a
	// Content-MD5 header with 400 MissingContentMD5, as older MinIO, OCI
	// and other S3-compatible servers do, and one whose Content-MD5 does
	// not match the body with 400 BadDigest (InvalidDigest when it is not
	// a base64 MD5).
	RequireContentMD5 bool
	// KeyError, when it returns a code for a key of a DeleteObjects
	// request, keeps that key and reports it as an <Error> entry of a 200
	// DeleteResult; the other keys are deleted. For DeleteObject the
	// request fails with that code (403 for AccessDenied, 404 for
	// NoSuch*, 500 for InternalError, 503 for SlowDown, 400 otherwise).
	KeyError func(key string) (code, message string)
	// Throttle, when it returns true for a request, answers 503 SlowDown
	// and does nothing else.
	Throttle func() bool
	// RequestError, when it returns a non-zero status for a request of
	// operation op, answers with that status and S3 error code and does
	// nothing else (e.g. 403 AccessDenied for DeleteObjects).
	RequestError func(op string) (status int, code string)
	// Reset, when it returns true for a request of operation op, closes the
	// connection with a TCP reset instead of answering; nothing is done.
	Reset func(op string) bool
	// Latency delays each request of operation op by the returned
	// duration before it is handled (a slow or hanging server).
	Latency func(op string) time.Duration
	// OnRequest, when set, is called for each request of operation op
	// (with the object key, "" for DeleteObjects and bucket requests)
	// after Latency and before the request is handled, which waits for
	// it: a test does something while a request of the code under test
	// is outstanding (commits a row at its first HeadObject).
	OnRequest func(op, key string)
	// RefuseConditions, when set to an S3 error code, answers every
	// conditional delete (an ETag on an object of a DeleteObjects body,
	// If-Match on DeleteObject) with that code and deletes nothing, as a
	// server without conditional deletes may: "NotImplemented" (501, with
	// S3's message about a header that implies functionality that is not
	// implemented) or e.g. "InvalidArgument" (400, with a message that
	// names the condition). Unset, conditions are honoured as S3 does.
	RefuseConditions string
	// CopyETag, when set, rewrites the ETag that a CopyObject answer gives
	// for the copy made at key (e.g. another one than the source's, as S3
	// answers for a copy of an object uploaded in parts). The copy itself
	// keeps its content's ETag.
	CopyETag func(key, etag string) string
}

func (o Options) faulty() bool {
	return o.RequireContentMD5 || o.KeyError != nil || o.Throttle != nil ||
		o.RequestError != nil || o.Reset != nil || o.Latency != nil || o.OnRequest != nil ||
		o.RefuseConditions != "" || o.CopyETag != nil
}

// Server is an S3-compatible server and a bucket prefix of its own.
type Server struct {
	endpoint string
	bucket   string
	prefix   string
	region   string
	env      []string
	client   *awss3.Client
	fake     *fake // nil for an external endpoint
}

// Start returns a server for t: the external one named by
// CDC_TEST_S3_ENDPOINT when that is set, else gofakes3 with a memory backend
// behind a handler that injects the faults of opts, listening on 127.0.0.1
// only and stopped when t ends. Each Start has its own key prefix (Prefix),
// so tests sharing an external bucket do not collide; against an external
// endpoint what is left under it is deleted when t ends.
//
// s3.New takes its credentials from the standard AWS chain, so in
// the in-process mode Start sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION and friends (see Env) for the test with t.Setenv: a test that
// calls Start cannot be parallel (t.Parallel panics after t.Setenv).
// Against an external endpoint the environment is left as the user set it.
//
// Faults are only available in-process: with an external endpoint, Start
// skips a test whose opts have any (see RequireFake).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if endpoint := os.Getenv(EnvEndpoint); endpoint != "" {
		if opts.faulty() {
			t.Skipf("%s is set: the fault-injecting server of this test runs only in-process", EnvEndpoint)
		}
		return startExternal(t, endpoint)
	}
	return startFake(t, opts)
}

func startFake(t testing.TB, opts Options) *Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(DefaultBucket); err != nil {
		t.Fatalf("create bucket %s: %v", DefaultBucket, err)
	}
	f := newFake(opts, backend, gofakes3.New(backend).Server())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		f.close() // ends Latency waits
		srv.CloseClientConnections()
		srv.Close()
	})

	s := &Server{
		endpoint: srv.URL,
		bucket:   DefaultBucket,
		prefix:   uniquePrefix(t),
		region:   fakeRegion,
		fake:     f,
	}
	s.env = []string{
		"AWS_ACCESS_KEY_ID=" + fakeAccessKey,
		"AWS_SECRET_ACCESS_KEY=" + fakeSecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + fakeRegion,
		"AWS_DEFAULT_REGION=" + fakeRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		// Nothing from the user's AWS setup may change what the tests see.
		"AWS_PROFILE=",
		"AWS_DEFAULT_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
		"AWS_MAX_ATTEMPTS=",
		"AWS_RETRY_MODE=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
	}
	for _, kv := range s.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: fakeAccessKey, SecretAccessKey: fakeSecretKey, Source: "s3test"}, nil
	})
	s.client, err = newClient(context.Background(), s.endpoint, s.region, creds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startExternal(t testing.TB, endpoint string) *Server {
	t.Helper()
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	bucket := os.Getenv(EnvBucket)
	if bucket == "" {
		bucket = DefaultBucket
	}
	s := &Server{endpoint: endpoint, bucket: bucket, prefix: uniquePrefix(t), region: region}
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	} {
		if v, ok := os.LookupEnv(k); ok {
			s.env = append(s.env, k+"="+v)
		}
	}
	s.env = append(s.env, "AWS_REGION="+region, "AWS_EC2_METADATA_DISABLED=true")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	s.client, err = newClient(ctx, endpoint, region, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ensureBucket(ctx); err != nil {
		t.Fatalf("%s=%s: %v", EnvEndpoint, endpoint, err)
	}
	t.Cleanup(func() { s.deleteUnderPrefix(t) })
	return s
}

// newClient builds a client configured as s3.New builds its own:
// custom endpoint, path-style addressing, checksums only where required.
// creds nil means the standard AWS chain.
func newClient(ctx context.Context, endpoint, region string, creds aws.CredentialsProvider) (*awss3.Client, error) {
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if creds != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(creds))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

func (s *Server) ensureBucket(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err == nil {
		return nil
	}
	in := &awss3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if s.region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.region),
		}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// deleteUnderPrefix removes what a test left on an external server.
func (s *Server) deleteUnderPrefix(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	keys, err := s.list(ctx, s.prefix)
	if err != nil {
		t.Errorf("clean up s3://%s/%s: %v", s.bucket, s.prefix, err)
		return
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			_, err := s.client.DeleteObject(gctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Errorf("clean up s3://%s/%s: %v", s.bucket, s.prefix, err)
	}
}

// uniquePrefix is "cdc-test/<test name>-<random>/".
func uniquePrefix(t testing.TB) string {
	name := []byte(t.Name())
	for i, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			name[i] = '-'
		}
	}
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("cdc-test/%s-%s/", name, hex.EncodeToString(rnd[:]))
}

// Endpoint is the server's URL, e.g. http://127.0.0.1:40123.
func (s *Server) Endpoint() string { return s.endpoint }

// Bucket is the bucket the tests use.
func (s *Server) Bucket() string { return s.bucket }

// Region is the region clients are configured with.
func (s *Server) Region() string { return s.region }

// Prefix is the key prefix of this Start, unique and ending in "/". Tests
// keep every key they create under it.
func (s *Server) Prefix() string { return s.prefix }

// Fake reports whether the server is the in-process one.
func (s *Server) Fake() bool { return s.fake != nil }

// RequireFake skips t when the server is an external endpoint, which the
// user chose explicitly by setting CDC_TEST_S3_ENDPOINT; in-process it does
// nothing. Tests that read the request counters or rely on faults call it.
func (s *Server) RequireFake(t testing.TB) {
	t.Helper()
	if s.fake == nil {
		t.Skipf("%s is set: this test needs the in-process server", EnvEndpoint)
	}
}

// Env returns the AWS_* variables that point a subprocess at this server's
// credentials and region (append them to os.Environ()); the endpoint and
// bucket go into its configuration.
func (s *Server) Env() []string { return slices.Clone(s.env) }

// Client returns a client configured as s3.New configures its own
// (path style, checksums only when required) but without the Content-MD5
// middleware of s3.Storage.
func (s *Server) Client() *awss3.Client { return s.client }

// Options returns options for s3.New on this server with the given
// key prefix (normally Prefix() or something under it).
func (s *Server) Options(prefix string) s3.Options {
	return s3.Options{
		Bucket:    s.bucket,
		Prefix:    prefix,
		Region:    s.region,
		Endpoint:  s.endpoint,
		PathStyle: true,
	}
}

// Put stores data at key. In-process it writes to the backend directly:
// not counted, no faults.
func (s *Server) Put(t testing.TB, key string, data []byte) {
	t.Helper()
	if err := s.put(context.Background(), key, data); err != nil {
		t.Fatalf("put s3://%s/%s: %v", s.bucket, key, err)
	}
}

// PutModified stores data at key like Put, dated modified: HeadObject
// and GetObject report it as its Last-Modified (listings still show the
// time of the put). Only in-process: it skips t against an external
// endpoint, whose servers date objects themselves.
func (s *Server) PutModified(t testing.TB, key string, data []byte, modified time.Time) {
	t.Helper()
	s.RequireFake(t)
	if err := s.putFake(key, data, modified); err != nil {
		t.Fatalf("put s3://%s/%s: %v", s.bucket, key, err)
	}
}

// TryPutModified stores data at key like PutModified, but returns the
// error (also against an external endpoint): for goroutines other than
// the test's.
func (s *Server) TryPutModified(key string, data []byte, modified time.Time) error {
	if s.fake == nil {
		return fmt.Errorf("put s3://%s/%s dated %v: only the in-process server can date objects", s.bucket, key, modified)
	}
	return s.putFake(key, data, modified)
}

// PutKeys stores data at every key, several at once against an external
// server.
func (s *Server) PutKeys(t testing.TB, keys []string, data []byte) {
	t.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	if s.fake != nil {
		g.SetLimit(1) // the memory backend takes one lock per put anyway
	}
	for _, k := range keys {
		g.Go(func() error { return s.put(ctx, k, data) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("put %d keys: %v", len(keys), err)
	}
}

// TryPut stores data at key like Put, but returns the error: for
// goroutines other than the test's.
func (s *Server) TryPut(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, key, data)
}

func (s *Server) put(ctx context.Context, key string, data []byte) error {
	if s.fake != nil {
		return s.putFake(key, data, time.Now())
	}
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	return err
}

// putFake writes data at key in the in-process backend, dated modified.
func (s *Server) putFake(key string, data []byte, modified time.Time) error {
	// gofakes3 answers HeadObject with the Last-Modified of the metadata,
	// and merges an existing object's metadata into that of a new one
	// (hence not nil): without its own date, a new upload would keep the
	// date of the object it replaces, or have none.
	meta := map[string]string{"Last-Modified": modified.UTC().Format(http.TimeFormat)}
	s.fake.cond.RLock() // never between a condition's check and its act
	defer s.fake.cond.RUnlock()
	_, err := s.fake.backend.PutObject(s.bucket, key, meta, bytes.NewReader(data), int64(len(data)), nil)
	return err
}

// Exists reports whether key exists.
func (s *Server) Exists(t testing.TB, key string) bool {
	t.Helper()
	if s.fake != nil {
		_, err := s.fake.backend.HeadObject(s.bucket, key)
		if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
			return false
		}
		if err != nil {
			t.Fatalf("head s3://%s/%s: %v", s.bucket, key, err)
		}
		return true
	}
	_, err := s.client.HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return false
	}
	if err != nil {
		t.Fatalf("head s3://%s/%s: %v", s.bucket, key, err)
	}
	return true
}

// Get returns the content of key; it fails t when key does not exist.
func (s *Server) Get(t testing.TB, key string) []byte {
	t.Helper()
	var body io.ReadCloser
	if s.fake != nil {
		obj, err := s.fake.backend.GetObject(s.bucket, key, nil)
		if err != nil {
			t.Fatalf("get s3://%s/%s: %v", s.bucket, key, err)
		}
		body = obj.Contents
	} else {
		out, err := s.client.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get s3://%s/%s: %v", s.bucket, key, err)
		}
		body = out.Body
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", s.bucket, key, err)
	}
	return data
}

// Keys returns every key that starts with prefix, sorted.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	keys, err := s.list(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list s3://%s/%s: %v", s.bucket, prefix, err)
	}
	return keys
}

func (s *Server) list(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	if s.fake != nil {
		list, err := s.fake.backend.ListBucket(s.bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: prefix}, gofakes3.ListBucketPage{})
		if err != nil {
			return nil, err
		}
		for _, c := range list.Contents {
			keys = append(keys, c.Key)
		}
	} else {
		pages := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, o := range page.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Requests returns how many requests of operation op (OpDeleteObjects, ...)
// reached the in-process server, faulted ones included; 0 against an
// external endpoint (call RequireFake first).
func (s *Server) Requests(op string) int {
	if s.fake == nil {
		return 0
	}
	return s.fake.requests(op)
}

// MaxInFlight returns the most requests of operation op the in-process
// server was handling at the same time; 0 against an external endpoint.
func (s *Server) MaxInFlight(op string) int {
	if s.fake == nil {
		return 0
	}
	return s.fake.maxInFlight(op)
}

// ReceivedKeys returns every object key the in-process server was asked
// about, in arrival order: the keys of DeleteObjects bodies and the keys in
// the URL of object requests. Nil against an external endpoint.
func (s *Server) ReceivedKeys() []string {
	if s.fake == nil {
		return nil
	}
	return s.fake.receivedKeys()
}

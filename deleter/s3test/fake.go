package s3test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fake is the handler in front of gofakes3: it counts requests, records
// keys and injects the faults of Options.
type fake struct {
	opts    Options
	backend *s3mem.Backend
	next    http.Handler
	stop    chan struct{}
	stopped sync.Once
	reqID   atomic.Uint64
	// cond makes a conditional request's check and act one step, as on
	// S3: a conditional request (an ETag in DeleteObjects, If-Match on
	// DeleteObject, If-None-Match: * on CopyObject) holds it exclusively
	// from the check to gofakes3's act; every other write (any method but GET
	// and HEAD), and the Server's own writes to the backend, hold it shared.
	// Without it, a write landing between the check and the act was
	// deleted or replaced although the condition no longer held.
	cond sync.RWMutex

	mu       sync.Mutex
	count    map[string]int
	inFlight map[string]int
	maxIn    map[string]int
	keys     []string
}

func newFake(opts Options, backend *s3mem.Backend, next http.Handler) *fake {
	return &fake{
		opts: opts, backend: backend, next: next, stop: make(chan struct{}),
		count: map[string]int{}, inFlight: map[string]int{}, maxIn: map[string]int{},
	}
}

func (f *fake) close() { f.stopped.Do(func() { close(f.stop) }) }

// The bodies of DeleteObjects, as far as the fake needs them.
type deleteRequest struct {
	XMLName xml.Name   `xml:"Delete"`
	Objects []objectID `xml:"Object"`
	Quiet   bool       `xml:"Quiet,omitempty"`
}

type objectID struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	ETag      string `xml:"ETag,omitempty"` // delete only if the object has it
}

// conditional reports whether an object of d carries a condition.
func (d *deleteRequest) conditional() bool {
	for _, o := range d.Objects {
		if o.ETag != "" {
			return true
		}
	}
	return false
}

type deleteResult struct {
	XMLName xml.Name   `xml:"DeleteResult"`
	Xmlns   string     `xml:"xmlns,attr,omitempty"`
	Deleted []objectID `xml:"Deleted"`
	Errors  []keyError `xml:"Error"`
}

type keyError struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// copyResult is the body of a CopyObject answer.
type copyResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	Xmlns        string   `xml:"xmlns,attr,omitempty"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified,omitempty"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
}

const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, key := operation(r)
	f.begin(op)
	defer f.end(op)

	var body []byte
	var del *deleteRequest
	if op == OpDeleteObjects {
		var err error
		body, err = io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			f.writeError(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
			return
		}
		del = new(deleteRequest)
		if err := xml.Unmarshal(body, del); err != nil {
			del = nil // gofakes3 answers MalformedXML
		} else {
			keys := make([]string, len(del.Objects))
			for i, o := range del.Objects {
				keys[i] = o.Key
			}
			f.record(keys...)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	} else if key != "" {
		f.record(key)
		if op == OpCopyObject {
			f.record(copySourceKey(r.Header.Get("x-amz-copy-source")))
		}
	}

	if f.opts.Latency != nil {
		if d := f.opts.Latency(op); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			case <-f.stop:
				timer.Stop()
				return
			}
		}
	}
	if f.opts.OnRequest != nil {
		f.opts.OnRequest(op, key)
	}
	if f.opts.Reset != nil && f.opts.Reset(op) {
		resetConnection(w)
		return
	}
	if f.opts.Throttle != nil && f.opts.Throttle() {
		f.writeError(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	}
	if f.opts.RequestError != nil {
		if status, code := f.opts.RequestError(op); status != 0 {
			f.writeError(w, r, status, code, "injected by s3test")
			return
		}
	}
	switch {
	case conditionalRequest(op, r, del):
		f.cond.Lock()
		defer f.cond.Unlock()
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		// A write: read its body first, so that a slow client never
		// holds f.cond (and the conditional requests waiting for it).
		if body == nil && r.Body != nil {
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				f.writeError(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		f.cond.RLock()
		defer f.cond.RUnlock()
	}
	switch op {
	case OpDeleteObjects:
		if f.opts.RequireContentMD5 {
			if code, msg := checkContentMD5(r.Header.Get("Content-MD5"), body); code != "" {
				f.writeError(w, r, http.StatusBadRequest, code, msg)
				return
			}
		}
		if del != nil && del.conditional() && f.opts.RefuseConditions != "" {
			f.refuseCondition(w, r, "an ETag in a DeleteObjects object")
			return
		}
		// gofakes3 v1.2.0 ignores the ETag of an object to delete.
		if del != nil && (f.opts.KeyError != nil || del.conditional()) {
			f.deleteObjects(w, r, del)
			return
		}
	case OpCopyObject:
		// S3 refuses a copy with If-None-Match: * onto an existing key;
		// gofakes3 v1.2.0 honours the condition on PutObject only.
		if r.Header.Get("If-None-Match") == "*" {
			if _, err := f.backend.HeadObject(bucketOf(r), key); err == nil {
				f.writeError(w, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
				return
			}
		}
		if f.opts.CopyETag != nil {
			f.copyObject(w, r, key)
			return
		}
	case OpDeleteObject:
		if f.opts.KeyError != nil {
			if code, msg := f.opts.KeyError(key); code != "" {
				f.writeError(w, r, statusOf(code), code, msg)
				return
			}
		}
		// gofakes3 v1.2.0 ignores If-Match on DeleteObject.
		if etag := r.Header.Get("If-Match"); etag != "" {
			if f.opts.RefuseConditions != "" {
				f.refuseCondition(w, r, "If-Match on DeleteObject")
				return
			}
			if code, msg := f.precondition(bucketOf(r), key, etag); code != "" {
				f.writeError(w, r, statusOf(code), code, msg)
				return
			}
		}
	}
	f.next.ServeHTTP(w, r)
}

// conditionalRequest reports whether a request of op carries a condition
// the fake checks itself (see fake.cond). del is the body of a
// DeleteObjects request (nil when unreadable).
func conditionalRequest(op string, r *http.Request, del *deleteRequest) bool {
	switch op {
	case OpDeleteObjects:
		return del != nil && del.conditional()
	case OpDeleteObject:
		return r.Header.Get("If-Match") != ""
	case OpCopyObject:
		return r.Header.Get("If-None-Match") == "*"
	}
	return false
}

// precondition checks the condition of a conditional delete of key, as
// S3 does: the object must exist (NoSuchKey) and have the ETag etag, with
// or without quotes, or any ETag for "*" (PreconditionFailed). It returns
// "" when the delete may go ahead. The caller holds f.cond exclusively
// until the delete is done, so that nothing lands in between; tests
// change objects in OnRequest, before the check.
func (f *fake) precondition(bucket, key, etag string) (code, msg string) {
	obj, err := f.backend.HeadObject(bucket, key)
	switch {
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		return "NoSuchKey", "The specified key does not exist."
	case err != nil:
		return "InternalError", err.Error()
	case etag == "*" || strings.Trim(etag, `"`) == hex.EncodeToString(obj.Hash):
		return "", ""
	}
	return "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
}

// refuseCondition answers a conditional delete with the error of
// Options.RefuseConditions, as a server without conditional deletes does.
func (f *fake) refuseCondition(w http.ResponseWriter, r *http.Request, what string) {
	code := f.opts.RefuseConditions
	msg := "Conditional deletes are not supported: " + what
	if code == "NotImplemented" {
		// What S3 says for a header it does not implement.
		msg = "A header you provided implies functionality that is not implemented"
	}
	f.writeError(w, r, statusOf(code), code, msg)
}

// copyObject lets gofakes3 copy and answers with the copy's ETag as
// Options.CopyETag rewrites it.
func (f *fake) copyObject(w http.ResponseWriter, r *http.Request, key string) {
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	var res copyResult
	if rec.Code != http.StatusOK || xml.Unmarshal(rec.Body.Bytes(), &res) != nil {
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	res.Xmlns = s3Namespace
	res.ETag = f.opts.CopyETag(key, res.ETag)
	out, err := xml.Marshal(res)
	if err != nil {
		f.writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.Header().Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, xml.Header)
	w.Write(out)
}

// bucketOf returns the bucket of a path-style request.
func bucketOf(r *http.Request) string {
	bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return bucket
}

// deleteObjects forwards to gofakes3 the keys that KeyError accepts and
// whose condition (the ETag of the object) holds, and adds an <Error>
// entry for each refused one to its 200 answer, as S3 does.
func (f *fake) deleteObjects(w http.ResponseWriter, r *http.Request, del *deleteRequest) {
	fwd := deleteRequest{Quiet: del.Quiet}
	var refused []keyError
	bucket := bucketOf(r)
	for _, o := range del.Objects {
		if f.opts.KeyError != nil {
			if code, msg := f.opts.KeyError(o.Key); code != "" {
				refused = append(refused, keyError{Key: o.Key, Code: code, Message: msg})
				continue
			}
		}
		if o.ETag != "" {
			if code, msg := f.precondition(bucket, o.Key, o.ETag); code != "" {
				refused = append(refused, keyError{Key: o.Key, Code: code, Message: msg})
				continue
			}
			o.ETag = ""
		}
		fwd.Objects = append(fwd.Objects, o)
	}
	body, err := xml.Marshal(fwd)
	if err != nil {
		f.writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Set("Content-Length", strconv.Itoa(len(body)))
	sum := md5.Sum(body)
	r2.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	for h := range r2.Header {
		if strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") {
			r2.Header.Del(h)
		}
	}
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r2)
	if rec.Code != http.StatusOK {
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	var res deleteResult
	if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		f.writeError(w, r, http.StatusInternalServerError, "InternalError", "decode gofakes3 answer: "+err.Error())
		return
	}
	res.Xmlns = s3Namespace
	res.Errors = append(res.Errors, refused...)
	out, err := xml.Marshal(res)
	if err != nil {
		f.writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", f.requestID())
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, xml.Header)
	w.Write(out)
}

// checkContentMD5 returns the S3 error code and message for a missing,
// malformed or wrong Content-MD5 of body, or "" when it is right.
func checkContentMD5(header string, body []byte) (code, msg string) {
	if header == "" {
		return "MissingContentMD5", "Missing required header for this request: Content-Md5."
	}
	got, err := base64.StdEncoding.DecodeString(header)
	if err != nil || len(got) != md5.Size {
		return "InvalidDigest", "The Content-Md5 you specified is not valid."
	}
	if sum := md5.Sum(body); !bytes.Equal(got, sum[:]) {
		return "BadDigest", "The Content-Md5 you specified did not match what we received."
	}
	return "", ""
}

// statusOf is the HTTP status S3 answers with for a request-level code.
func statusOf(code string) int {
	switch {
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return http.StatusForbidden
	case strings.HasPrefix(code, "NoSuch"):
		return http.StatusNotFound
	case code == "InternalError":
		return http.StatusInternalServerError
	case code == "NotImplemented":
		return http.StatusNotImplemented
	case code == "PreconditionFailed":
		return http.StatusPreconditionFailed
	case code == "SlowDown" || code == "ServiceUnavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func (f *fake) requestID() string { return fmt.Sprintf("S3TEST%010d", f.reqID.Add(1)) }

func (f *fake) writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	id := f.requestID()
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", id)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	out, _ := xml.Marshal(errorResponse{Code: code, Message: msg, RequestID: id})
	io.WriteString(w, xml.Header)
	w.Write(out)
}

// resetConnection closes the client's connection with a TCP RST.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("s3test: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// copySourceKey returns the key of an x-amz-copy-source header,
// "[/]bucket/key" URL-encoded.
func copySourceKey(src string) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if k, err := url.PathUnescape(key); err == nil {
		return k
	}
	return key
}

// operation names the S3 operation of a path-style request and returns
// the object key in its URL, if any.
func operation(r *http.Request) (op, key string) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	switch {
	case bucket == "":
		return "ListBuckets", ""
	case key == "":
		switch r.Method {
		case http.MethodPost:
			if q.Has("delete") {
				return OpDeleteObjects, ""
			}
		case http.MethodHead:
			return OpHeadBucket, ""
		case http.MethodGet:
			if q.Has("location") {
				return "GetBucketLocation", ""
			}
			return OpListObjects, ""
		case http.MethodPut:
			return "CreateBucket", ""
		case http.MethodDelete:
			return "DeleteBucket", ""
		}
	default:
		switch r.Method {
		case http.MethodGet:
			return OpGetObject, key
		case http.MethodHead:
			return OpHeadObject, key
		case http.MethodPut:
			if r.Header.Get("x-amz-copy-source") != "" {
				return OpCopyObject, key
			}
			return OpPutObject, key
		case http.MethodDelete:
			return OpDeleteObject, key
		}
	}
	return r.Method + " " + r.URL.Path, key
}

func (f *fake) begin(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count[op]++
	f.inFlight[op]++
	f.maxIn[op] = max(f.maxIn[op], f.inFlight[op])
}

func (f *fake) end(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight[op]--
}

func (f *fake) record(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, keys...)
}

func (f *fake) requests(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[op]
}

func (f *fake) maxInFlight(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxIn[op]
}

func (f *fake) receivedKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

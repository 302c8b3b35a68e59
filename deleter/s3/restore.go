package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

// Restore implements cdccleaner.Restorer: it copies Prefix+trash back to
// Prefix+p and then deletes the trash object. trash must lie under
// TrashPrefix and p must not, and both must pass cdccleaner.ValidatePath;
// any other pair is a permanent rejected_path error and never reaches the
// server (see deleter.CheckRestore).
//
// When an object exists at p (HeadObject), it answers Occupied and touches
// nothing. The copy then carries If-None-Match: *, so that S3 refuses to
// replace an object that appeared after the HEAD (412, answered Occupied
// too; a 409 ConditionalRequestConflict is transient). A server that
// ignores that condition on CopyObject, as gofakes3 does (s3test's server
// enforces it, as S3 does), leaves a window between the HEAD and the copy
// in which a new upload would be replaced. When the trash object is
// missing (NoSuchKey on the copy source), it answers NotInTrash. The
// restored object is a copy: same content and metadata, a new
// LastModified.
//
// Once the copy is made, the restore has succeeded: a failure to delete
// the trash object is ignored, and PurgeTrash removes that copy once its
// retention is over. S3 has no rename: between the copy and that delete,
// a Delete of p with trash on would copy p to the same trash key, and the
// delete would remove that copy; callers must not restore and delete one
// path at the same time. Errors are classified as for Delete: throttling, 5xx
// and credential trouble are transient, other refusals permanent.
func (s *Storage) Restore(ctx context.Context, p, trash string) (cdccleaner.RestoreOutcome, error) {
	if err := deleter.CheckRestore(p, trash, s.opts.TrashPrefix); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("restore %q: not attempted: %w", p, err)
	}
	dst, src := s.Key(p), s.Key(trash)
	occupied, err := s.exists(ctx, dst)
	if err != nil {
		return 0, fmt.Errorf("restore s3://%s/%s: look at it: %w", s.opts.Bucket, dst, err)
	}
	if occupied {
		return cdccleaner.Occupied, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	_, err = s.client.CopyObject(rctx, &awss3.CopyObjectInput{
		Bucket:      aws.String(s.opts.Bucket),
		Key:         aws.String(dst),
		CopySource:  aws.String(s.copySource(src)),
		IfNoneMatch: aws.String("*"),
	})
	switch {
	case err == nil:
	case isNoSuchKey(err):
		return cdccleaner.NotInTrash, nil
	case isPreconditionFailed(err):
		return cdccleaner.Occupied, nil
	default:
		return 0, fmt.Errorf("restore s3://%s/%s from %s: %w", s.opts.Bucket, dst, src, classifyS3(err))
	}
	dctx, dcancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer dcancel()
	// Ignored: see above.
	s.client.DeleteObject(dctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(src)})
	return cdccleaner.Restored, nil
}

// isPreconditionFailed reports whether err is a 412: a conditional write
// found its condition false.
func isPreconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

// List implements cdccleaner.Lister with ListObjectsV2, one page (up to 1000
// keys) at a time, under Prefix. Keys under Prefix+TrashPrefix (when set,
// whether trash is on or not) are skipped, and so are "folder" markers (keys
// ending in "/" with no content) that consoles create. A path is the key
// without Prefix.
func (s *Storage) List(ctx context.Context, fn func(cdccleaner.File) error) error {
	return s.list(ctx, "", fn)
}

// ListPrefix implements cdccleaner.PrefixLister as List does, under
// Prefix+prefix: the trash is skipped unless prefix lies in it (the place
// of a derived prefix in the trash, for restoring). prefix is checked by
// deleter.CheckPrefix first (a permanent rejected_path error otherwise),
// so the listing never reaches outside Prefix. A prefix with no object
// below it lists nothing; a folder marker at prefix is not listed. Errors
// are classified as for Delete.
func (s *Storage) ListPrefix(ctx context.Context, prefix string, fn func(cdccleaner.File) error) error {
	if err := deleter.CheckPrefix(prefix); err != nil {
		return err
	}
	return s.list(ctx, prefix, fn)
}

// list calls fn for each object under Prefix+under ("" for the whole
// storage, else a checked prefix), page by page, with its path (the key
// without Prefix); see List for what is skipped. ctx is checked before
// each object.
func (s *Storage) list(ctx context.Context, under string, fn func(cdccleaner.File) error) error {
	trash := ""
	if s.opts.TrashPrefix != "" && !strings.HasPrefix(under, s.opts.TrashPrefix) {
		trash = s.opts.Prefix + s.opts.TrashPrefix
	}
	input := &awss3.ListObjectsV2Input{Bucket: aws.String(s.opts.Bucket)}
	if s.opts.Prefix+under != "" {
		input.Prefix = aws.String(s.opts.Prefix + under)
	}
	if s.listPageSize > 0 {
		input.MaxKeys = aws.Int32(s.listPageSize)
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, input)
	for pages.HasMorePages() {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		page, err := pages.NextPage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", s.opts.Bucket, s.opts.Prefix+under, classifyS3(err))
		}
		for _, o := range page.Contents {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := aws.ToString(o.Key)
			p, ok := strings.CutPrefix(key, s.opts.Prefix)
			if !ok || p == "" || trash != "" && strings.HasPrefix(key, trash) {
				continue
			}
			size := aws.ToInt64(o.Size)
			if size == 0 && strings.HasSuffix(p, "/") {
				continue // a folder marker
			}
			if err := fn(cdccleaner.File{Path: p, Size: size, ModTime: aws.ToTime(o.LastModified), ETag: aws.ToString(o.ETag)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stat implements cdccleaner.Statter with HeadObject: a scan looks at an
// orphan again right before deleting it, so an object overwritten since it
// was listed (a new upload to the same key, whose row may not be committed
// yet) is kept. A missing object is fs.ErrNotExist.
func (s *Storage) Stat(p string) (cdccleaner.File, error) {
	if err := cdccleaner.ValidatePath(p); err != nil {
		return cdccleaner.File{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.Key(p))})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchKey") {
			return cdccleaner.File{}, fmt.Errorf("stat s3://%s/%s: %w", s.opts.Bucket, s.Key(p), fs.ErrNotExist)
		}
		return cdccleaner.File{}, fmt.Errorf("stat s3://%s/%s: %w", s.opts.Bucket, s.Key(p), classifyS3(err))
	}
	f := cdccleaner.File{Path: p, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		f.ModTime = *out.LastModified
	}
	return f, nil
}

package config

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// S3Location is where the objects of an s3 storage live, normalized so that
// two spellings of one place compare equal: the server that holds the bucket
// (S3Server), the bucket's name, and the key prefix.
type S3Location struct {
	Server string
	Bucket string // in lower case: S3 names buckets in lower case, and DNS ignores case
	Prefix string // without leading or repeated slashes
}

// NewS3Location returns the location of the objects under prefix in bucket,
// on the server that endpoint (an s3 storage's endpoint setting, or the
// endpoint an S3 client resolved) addresses. Neither the region nor
// path_style changes the location: a bucket is one bucket however it is
// addressed.
func NewS3Location(endpoint, bucket, prefix string) S3Location {
	p := strings.TrimLeft(prefix, "/")
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return S3Location{Server: S3Server(endpoint), Bucket: strings.ToLower(bucket), Prefix: p}
}

// Overlaps reports whether an object key can lie in both locations: the same
// bucket on the same server, and one prefix starting the other.
func (l S3Location) Overlaps(m S3Location) bool {
	return l.Server == m.Server && l.Bucket == m.Bucket &&
		(strings.HasPrefix(l.Prefix, m.Prefix) || strings.HasPrefix(m.Prefix, l.Prefix))
}

// awsServer is the S3Server of every AWS endpoint.
const awsServer = "aws"

// S3Server identifies the server an s3 endpoint addresses, so that two
// spellings of the same server compare equal. When in doubt it says "the
// same": two storages that look distinct but share objects would each check
// references against only its own columns, and delete what the other's
// columns still reference.
//
//   - An empty endpoint is AWS's default for the storage's region, and every
//     *.amazonaws.com (or .amazonaws.com.cn) host is AWS: bucket names are
//     global there, so the region does not matter. All of them are "aws".
//   - Otherwise the server is the host and port: the scheme does not count
//     (one port serves one of http and https), nor do user information,
//     query and fragment; host names are compared in lower case without a
//     trailing dot; the standard ports 80 and 443, written or not, count as
//     one; loopback and unspecified addresses and "localhost" count as one
//     host; IP addresses are compared in their canonical form. A path other
//     than "/" is kept (a proxy may route paths to different servers),
//     without trailing slashes.
//   - An endpoint that is not an http(s) URL with a host (which Validate
//     reports) is its own server, as written.
func S3Server(endpoint string) string {
	if strings.TrimSpace(endpoint) == "" {
		return awsServer
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "not a URL: " + endpoint
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
		return "not a URL: " + endpoint
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "amazonaws.com" || strings.HasSuffix(host, ".amazonaws.com") ||
		host == "amazonaws.com.cn" || strings.HasSuffix(host, ".amazonaws.com.cn") {
		return awsServer
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap().WithZone("")
		switch {
		case addr.IsLoopback() || addr.IsUnspecified():
			host = "localhost"
		case addr.Is6():
			host = "[" + addr.String() + "]"
		default:
			host = addr.String()
		}
	} else if strings.HasSuffix(host, ".localhost") {
		host = "localhost"
	}
	port := u.Port()
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		port = strconv.FormatUint(n, 10) // without leading zeros
	}
	server := host
	if port != "" && port != "80" && port != "443" {
		server += ":" + port
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		server += p
	}
	return server
}

package s3

// SetListPageSize makes the listings of s ask for pages of at most n keys.
func SetListPageSize(s *Storage, n int32) { s.listPageSize = n }

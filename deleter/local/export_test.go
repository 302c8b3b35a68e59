package local

// Classify exposes classify to the external tests, which cannot provoke
// every errno on a real file system (permission bits do not stop root).
var Classify = classify

// Package sdktest holds the end-to-end tests of transform's translators
// with the official OpenAI and Anthropic Go SDKs. They are apart from
// transform so that its own test binary, and every fuzz build of it, stays
// free of the SDKs (large, and instrumented whole when fuzzing).
package sdktest

// Package bench holds the benchmarks that guard Parley's hot paths. Each
// reports the figure that matters (events/s, p99 latency) next to the naive
// baseline it must beat, measured in the same run. Figures and how to
// reproduce them are in README.md.
package bench

//go:build race

package sfu

// The race detector makes sync.Pool drop items on purpose, so pools that
// never allocate in a normal build do under -race.
const raceEnabled = true

//go:build !linux

package main

// followGoRun is Linux-only: elsewhere `go run` keeps its own behaviour.
func followGoRun() {}

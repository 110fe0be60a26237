// Package pluginpb is the generated gRPC code of plugin.proto. Do not edit
// the .pb.go files: change plugin.proto and run `go generate ./plugins/...`.
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto

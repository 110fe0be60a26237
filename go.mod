module github.com/parleyhq/parley

go 1.26.8

require (
	github.com/oklog/ulid/v2 v2.1.1
	go.etcd.io/bbolt v1.4.3
)

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sys v0.35.0 // indirect
)

// etcd as the test control plane's storage. etcd's own main is in a module that
// does not version with the server, so this calls the server module's entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

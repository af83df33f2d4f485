//go:build tools

// Keeps kube-apiserver's packages in go.mod / go.sum so that
// `go build k8s.io/kubernetes/cmd/kube-apiserver` builds the upstream main as is.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)

//go:build tools

// Keeps kube-apiserver's and kube-controller-manager's packages in go.mod / go.sum so
// that `go build k8s.io/kubernetes/cmd/...` builds the upstream mains as is.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)

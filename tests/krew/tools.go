//go:build tools

// Keeps the packages of both krew binaries in go.mod / go.sum, so that
// `go build sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest`
// builds krew's own mains as they are.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)

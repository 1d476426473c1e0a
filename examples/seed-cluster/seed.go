// Package seedcluster embeds the reference cluster bundle so that
// `kubeatlas demo` needs nothing but the binary.
package seedcluster

import "embed"

// FS holds bundle.yaml, api/ and nodes/ of the reference cluster.
//
//go:embed bundle.yaml api nodes
var FS embed.FS

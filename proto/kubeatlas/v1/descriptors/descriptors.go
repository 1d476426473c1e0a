// Package descriptors holds the API's descriptors with their comments, for
// server reflection. It is a package of its own so that the agent and the CLI,
// which need no reflection, do not link the descriptor machinery.
package descriptors

import (
	_ "embed"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is `buf build` of the API: the same descriptors as the
// generated code, plus the comments, which protoc-gen-go leaves out.
//
//go:embed kubeatlas.binpb
var descriptorSet []byte

var (
	filesOnce sync.Once
	files     *protoregistry.Files
	filesErr  error
)

// WithComments returns the API's file descriptors with their
// source comments, for server reflection: `grpcurl describe` then shows them.
func WithComments() (*protoregistry.Files, error) {
	filesOnce.Do(func() {
		var set descriptorpb.FileDescriptorSet
		if err := proto.Unmarshal(descriptorSet, &set); err != nil {
			filesErr = fmt.Errorf("reading the embedded descriptor set: %w", err)
			return
		}
		files, filesErr = protodesc.NewFiles(&set)
	})
	return files, filesErr
}

// Resolver finds descriptors in the commented API first, then among every
// file linked into the binary (health, reflection, well-known types).
type Resolver struct{ API *protoregistry.Files }

// FindFileByPath implements protodesc.Resolver.
func (r Resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if r.API != nil {
		if fd, err := r.API.FindFileByPath(path); err == nil {
			return fd, nil
		}
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

// FindDescriptorByName implements protodesc.Resolver.
func (r Resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if r.API != nil {
		if d, err := r.API.FindDescriptorByName(name); err == nil {
			return d, nil
		}
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

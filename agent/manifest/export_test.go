package manifest

import (
	"google.golang.org/protobuf/proto"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

type v1StaticPodManifest = v1.StaticPodManifest

func protoSize(m *v1.StaticPodManifest) (int, error) {
	b, err := proto.Marshal(m)
	return len(b), err
}

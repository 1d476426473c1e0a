package kube

import (
	"os"
	"testing"
	"testing/fstest"
)

func FuzzReadObjects(f *testing.F) {
	if data, err := os.ReadFile("../../examples/seed-cluster/api/pods.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}`))
	f.Add([]byte("---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := ReadObjectsFS(fstest.MapFS{"api/x.yaml": {Data: b}}, "api")
		if err == nil && objs == nil {
			t.Fatal("no objects and no error")
		}
	})
}

package fleet

import "testing"

func TestKeys(t *testing.T) {
	for _, c := range []struct{ cluster, node string }{{"prod", "node-1"}, {"east.prod.example.com", "ip-10-0-0-1.ec2.internal"}, {"a", ""}} {
		k := nodeKey(c.cluster, c.node)
		if c.node == "" {
			k = clusterKey(c.cluster)
		}
		cl, n, ok := parseKey(k)
		if !ok || cl != c.cluster || n != c.node {
			t.Errorf("%q → %q %q %v", k, cl, n, ok)
		}
	}
	for _, k := range []string{"", "x", "x.node", "x.node.", ".cluster", "x.y.z", "x.node.a.b", "x.cluster.y"} {
		if _, _, ok := parseKey(k); ok {
			t.Errorf("%q parsed", k)
		}
	}
	if got := clusterPrefix("east.prod"); got != "east_prod.>" {
		t.Errorf("prefix %q", got)
	}
}

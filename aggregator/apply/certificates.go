package apply

import (
	"time"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Certificates expire with no report from anyone: the Applier remembers the
// earliest moment a live node's certificate turns expiring or expired, and
// CheckCertificates re-joins the nodes with certificates once it has passed.

// noteCertificates lowers certNext to the next moment after now at which one
// of certs changes state.
func (e *Applier) noteCertificates(certs []*v1.Certificate, now time.Time) {
	window := e.cfg.Settings.CertificateExpiring
	next := int64(0)
	for _, c := range certs {
		if c.GetNotAfter() == nil {
			continue
		}
		na := c.NotAfter.AsTime()
		for _, t := range []time.Time{c.NotBefore.AsTime(), na.Add(-window), na} {
			if t.After(now) && (next == 0 || t.UnixNano() < next) {
				next = t.UnixNano()
			}
		}
	}
	if next == 0 {
		return
	}
	for {
		cur := e.certNext.Load()
		if cur != 0 && cur <= next {
			return
		}
		if e.certNext.CompareAndSwap(cur, next) {
			return
		}
	}
}

// CheckCertificates re-joins the live nodes that hold certificates when one
// of them may have turned expiring or expired since the last check, so its
// finding appears without any report. It is cheap when nothing is due: call
// it every few seconds.
func (e *Applier) CheckCertificates() error {
	now := e.cfg.Now()
	due := e.certNext.Load()
	if due == 0 || now.UnixNano() < due {
		return nil
	}
	e.certNext.CompareAndSwap(due, 0)
	txn := e.store.WriteTxn()
	defer txn.Abort()
	byCluster := map[string][]string{}
	for n := range txn.Nodes(nil, "") {
		if a := n.Agent; a != nil && a.Reference.IsZero() && len(a.Certificates) > 0 {
			byCluster[n.Cluster] = append(byCluster[n.Cluster], n.Name)
		}
	}
	for cluster, nodes := range byCluster {
		if err := e.rejoin(txn, cluster, nodes); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

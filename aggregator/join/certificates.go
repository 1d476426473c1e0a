package join

import (
	"fmt"
	"time"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// CertificateState says where a certificate stands at now: expired (or not
// valid yet), expiring within window, or neither.
func CertificateState(c *v1.Certificate, now time.Time, window time.Duration) (expired, expiring bool) {
	if c.GetNotAfter() == nil || now.IsZero() {
		return false, false
	}
	na := c.NotAfter.AsTime()
	if now.After(na) || (c.NotBefore != nil && now.Before(c.NotBefore.AsTime())) {
		return true, false
	}
	return false, na.Sub(now) <= window
}

// certificateFindings raises CERTIFICATE_EXPIRED and CERTIFICATE_EXPIRING
// for the node's certificates, naming the components that will fail.
func (j *joiner) certificateFindings() {
	a := j.in.Node.Agent
	if a == nil || len(a.Certificates) == 0 {
		return
	}
	now := j.in.Now
	for _, c := range a.Certificates {
		expired, expiring := CertificateState(c, now, j.in.Settings.CertificateExpiring)
		if !expired && !expiring {
			continue
		}
		na := c.NotAfter.AsTime().UTC()
		users := c.UsedBy()
		if users == "" {
			users = "no component seen using it"
		}
		attrs := []string{"path", c.Path, "field", c.Field, "subject", c.Subject, "issuer", c.Issuer,
			"not_after", na.Format(time.RFC3339), "serial", c.Serial, "used_by", users}
		subject := c.Name()
		evidence := ev(v1.EvidenceKind_EVIDENCE_KIND_CERTIFICATE,
			fmt.Sprintf("%s: subject %s, issuer %s, valid %s to %s", subject, c.Subject, c.Issuer,
				c.NotBefore.AsTime().UTC().Format(time.RFC3339), na.Format(time.RFC3339)), attrs...)
		if expired {
			what := "expired " + roundDays(now.Sub(na)) + " ago"
			if now.Before(na) {
				what = "is not valid until " + c.NotBefore.AsTime().UTC().Format(time.RFC3339)
			}
			j.finding(v1.FindingKind_FINDING_KIND_CERTIFICATE_EXPIRED, v1.Severity_SEVERITY_CRITICAL, subject,
				fmt.Sprintf("certificate %s (%s) on %s %s (%s); used by %s", subject, c.Subject, j.node, what,
					na.Format(time.RFC3339), users), evidence)
			continue
		}
		j.finding(v1.FindingKind_FINDING_KIND_CERTIFICATE_EXPIRING, v1.Severity_SEVERITY_WARNING, subject,
			fmt.Sprintf("certificate %s (%s) on %s expires in %s (%s); used by %s", subject, c.Subject, j.node,
				roundDays(na.Sub(now)), na.Format(time.RFC3339), users), evidence)
	}
}

// roundDays says a duration in days, or hours under two days.
func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

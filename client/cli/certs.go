package cli

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/aggregator/auth"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
	"github.com/kubeatlas/kubeatlas/client/printer"
)

func newCertsCmd() *cobra.Command {
	var (
		dir, cluster string
		hosts, nodes []string
		clients      []string
		valid        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a CA and the aggregator's, agents' and clients' certificates (for clusters without cert-manager)",
		Long: `Make the certificates kubeatlas needs for mutual TLS, in --dir:
  ca.crt, ca.key                 the CA (made once, reused afterwards)
  server.crt, server.key         the aggregator's serving certificate for --host names
  agent-<node>.crt, .key         one per --node: it may report only for that node of --cluster
  client-<name>.crt, .key        one per --client: it may query`,
		Example: "  kubeatlas certs --dir ./pki --host kubeatlas-aggregator.kubeatlas.svc --cluster prod --node node-1 --node node-2 --client ops",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			if len(nodes) > 0 && cluster == "" {
				return errors.New("agent certificates name their cluster: give --cluster")
			}
			if valid <= 0 {
				return fmt.Errorf("--valid-for %v: the certificates would be expired already", valid)
			}
			// Refuse what the aggregator's ingest would refuse, before any
			// file is written.
			if cluster != "" && !state.ValidName(cluster) {
				return fmt.Errorf("--cluster %q: the aggregator takes only lower-case DNS names (letters, digits, '-' and '.')", cluster)
			}
			for _, n := range nodes {
				if !state.ValidName(n) {
					return fmt.Errorf("--node %q: the aggregator takes only lower-case DNS names (letters, digits, '-' and '.')", n)
				}
			}
			for _, c := range clients {
				if !state.ValidName(c) {
					return fmt.Errorf("--client %q: use lower-case letters, digits, '-' and '.' (it names a file too)", c)
				}
			}
			ca, err := auth.LoadCA(dir)
			switch {
			case err == nil:
				if left := time.Until(ca.Cert.NotAfter); left < valid {
					if left <= 0 {
						return fmt.Errorf("the CA in %s expired at %s: move ca.crt and ca.key away to make a new one", dir, ca.Cert.NotAfter.Format(time.RFC3339))
					}
					return fmt.Errorf("the CA in %s expires at %s, before certificates valid for %v would: lower --valid-for or make a new CA", dir, ca.Cert.NotAfter.Format(time.RFC3339), valid)
				}
				if err := printer.Notef(cmd.OutOrStdout(), "using the CA in %s", dir); err != nil {
					return err
				}
			case errors.Is(err, os.ErrNotExist):
				if ca, err = auth.NewCA("kubeatlas-ca", 10*valid); err != nil {
					return err
				}
				if err := auth.WritePEM(dir, "ca", ca.Cert, ca.Key); err != nil {
					return err
				}
				if err := printer.Notef(cmd.OutOrStdout(), "wrote %s", filepath.Join(dir, "ca.crt")); err != nil {
					return err
				}
			default:
				return fmt.Errorf("reading the CA: %w", err)
			}
			now := time.Now()
			write := func(base string, subject func() (*auth.Issued, error)) error {
				is, err := subject()
				if err != nil {
					return err
				}
				if err := auth.WritePEM(dir, base, is.Cert, is.Key); err != nil {
					return err
				}
				return printer.Notef(cmd.OutOrStdout(), "wrote %s (until %s)", filepath.Join(dir, base+".crt"), is.Cert.NotAfter.Format(time.RFC3339))
			}
			if len(hosts) > 0 {
				if err := write("server", func() (*auth.Issued, error) {
					return ca.Issue(pkixName("kubeatlas-aggregator"), true, hosts, now.Add(-time.Minute), now.Add(valid))
				}); err != nil {
					return err
				}
			}
			for _, n := range nodes {
				if err := write("agent-"+n, func() (*auth.Issued, error) {
					return ca.Issue(auth.AgentSubject(cluster, n), false, nil, now.Add(-time.Minute), now.Add(valid))
				}); err != nil {
					return err
				}
			}
			for _, c := range clients {
				if err := write("client-"+c, func() (*auth.Issued, error) {
					return ca.Issue(auth.ClientSubject(c), false, nil, now.Add(-time.Minute), now.Add(valid))
				}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the CA and certificates")
	f.StringSliceVar(&hosts, "host", nil, "DNS name or IP of the aggregator (repeatable); makes server.crt")
	f.StringVar(&cluster, "cluster", "", "the cluster the --node certificates belong to")
	f.StringSliceVar(&nodes, "node", nil, "node name to make an agent certificate for (repeatable)")
	f.StringSliceVar(&clients, "client", nil, "name to make a query client certificate for (repeatable)")
	f.DurationVar(&valid, "valid-for", 365*24*time.Hour, "how long the certificates are valid")
	return cmd
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/kubeatlas/kubeatlas/aggregator/fleet"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
)

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Set up the fleet tier: NATS credentials for aggregators and fleet views",
	}
	cmd.AddCommand(newFleetAuthCmd())
	return cmd
}

func newFleetAuthCmd() *cobra.Command {
	var aggs, views []string
	var bucket, out string
	cmd := &cobra.Command{
		Use:   "nats-auth --aggregator NAME=CLUSTER[,CLUSTER…]… --view NAME… --out DIR",
		Short: "Make an nkey for each aggregator and fleet view, and the NATS authorization that binds each aggregator to its clusters",
		Long: `nats-auth writes, into DIR, one nkey seed per aggregator and fleet view (NAME.nk, mode 0600:
give each to its process with --fleet-nkey-seed) and auth.conf, a NATS server
authorization block to include in the servers' configuration. An aggregator may
write only its own clusters' keys of the fleet bucket; a fleet view reads them
and writes nothing. Seeds are secrets; auth.conf holds public keys only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required: the directory for the seeds and auth.conf")
			}
			if len(aggs) == 0 && len(views) == 0 {
				return fmt.Errorf("name at least one --aggregator NAME=CLUSTER or --view NAME")
			}
			type entry struct {
				name     string
				pub, sub []string
			}
			var entries []entry
			seen := map[string]bool{}
			owner := map[string]string{}
			for _, a := range aggs {
				name, list, ok := strings.Cut(a, "=")
				if !ok || name == "" || list == "" {
					return fmt.Errorf("--aggregator %q: want NAME=CLUSTER[,CLUSTER…]", a)
				}
				clusters := strings.Split(list, ",")
				for _, c := range clusters {
					if !state.ValidName(c) {
						return fmt.Errorf("--aggregator %s: %q is not a cluster name (lower-case letters, digits, '-' and '.')", name, c)
					}
					if prev, dup := owner[c]; dup {
						return fmt.Errorf("cluster %s is given to both %s and %s: one aggregator owns a cluster", c, prev, name)
					}
					owner[c] = name
				}
				pub, sub := fleet.PublisherSubjects(bucket, clusters...)
				entries = append(entries, entry{name, pub, sub})
			}
			for _, v := range views {
				pub, sub := fleet.ViewSubjects(bucket)
				entries = append(entries, entry{v, pub, sub})
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			var conf strings.Builder
			conf.WriteString("# kubeatlas fleet: one user per aggregator and fleet view (made by kubeatlas fleet nats-auth)\nauthorization {\n  users = [\n")
			for _, e := range entries {
				if !validFileName(e.name) || seen[e.name] {
					return fmt.Errorf("%q: names must be unique, of letters, digits, '-', '_' and '.'", e.name)
				}
				seen[e.name] = true
				kp, err := nkeys.CreateUser()
				if err != nil {
					return err
				}
				pubKey, err := kp.PublicKey()
				if err != nil {
					return err
				}
				seed, err := kp.Seed()
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, e.name+".nk"), append(seed, '\n'), 0o600); err != nil {
					return err
				}
				sort.Strings(e.pub)
				fmt.Fprintf(&conf, "    # %s\n    {nkey: %s, permissions: {publish: {allow: [%s]}, subscribe: {allow: [%s]}}}\n",
					e.name, pubKey, quoteAll(e.pub), quoteAll(e.sub))
			}
			conf.WriteString("  ]\n}\n")
			if err := os.WriteFile(filepath.Join(out, "auth.conf"), []byte(conf.String()), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d nkey seeds and auth.conf to %s\n", len(entries), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&aggs, "aggregator", nil, "an aggregator and the clusters it publishes: NAME=CLUSTER[,CLUSTER…] (repeatable)")
	f.StringArrayVar(&views, "view", nil, "a fleet view's name (repeatable)")
	f.StringVar(&bucket, "bucket", fleet.DefaultBucket, "the fleet bucket")
	f.StringVar(&out, "out", "", "directory to write the seeds and auth.conf into")
	return cmd
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func validFileName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

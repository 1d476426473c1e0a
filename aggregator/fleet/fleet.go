// Package fleet joins many aggregators into one fleet view through a NATS
// JetStream key-value bucket.
//
// A cluster's aggregator stays authoritative for its clusters and publishes
// its joined answer into the bucket (Publisher): one key per cluster,
// "<cluster>.cluster", holding the cluster and its cluster-wide findings and
// put again every heartbeat, and one key per node, "<cluster>.node.<node>",
// holding the node, its component instances and its findings. Processes,
// manifests and certificates stay with the aggregator. Names are written
// with '.' as '_' (a DNS name holds no '_'), so that a cluster is one
// subject token and NATS permissions can let an aggregator write under its
// own clusters only: $KV.<bucket>.<cluster>.>.
//
// A fleet view (View) watches the bucket and materialises it into the same
// state store the query server reads, marking each cluster live, stale or
// unreachable by the age of its last record. It writes nothing to the
// bucket, holds nothing that the bucket does not, and any number of them
// can run; a restarted one catches up from the bucket.
package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeatlas/kubeatlas/tlsfiles"
)

// DefaultBucket is the key-value bucket's name.
const DefaultBucket = "kubeatlas"

// Conn says how to reach NATS.
type Conn struct {
	// URL lists the servers, comma-separated: nats://a:4222,nats://b:4222.
	URL string
	// Name is this process's name in NATS and, for a publisher, in the
	// fleet view (Cluster.publisher).
	Name string
	// Bucket is the key-value bucket (DefaultBucket).
	Bucket string
	// NkeySeedFile authenticates with an nkey.
	NkeySeedFile string
	// CAFile verifies the servers' certificates; CertFile and KeyFile are
	// a client certificate for servers that ask for one.
	CAFile, CertFile, KeyFile string
	Logger                    *slog.Logger
}

func (c *Conn) defaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// connect opens a connection that reconnects for ever. Problems the server
// reports asynchronously (a permission refused) go to onErr.
func (c *Conn) connect(onErr func(error)) (*nats.Conn, error) {
	if c.URL == "" {
		return nil, errors.New("no NATS URL")
	}
	c.defaults()
	log := c.Logger
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("NATS", "error", err)
			if onErr != nil {
				onErr(err)
			}
		}),
	}
	if c.NkeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("reading the nkey seed %s: %w", c.NkeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if c.CAFile != "" || c.CertFile != "" {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", c.URL, err)
	}
	return nc, nil
}

func (c *Conn) tlsConfig() (*tls.Config, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("a NATS client certificate needs both its certificate and key files")
	}
	src, err := tlsfiles.Load(tlsfiles.Files{CA: c.CAFile, Cert: c.CertFile, Key: c.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("NATS TLS: %w", err)
	}
	return src.ClientConfig(""), nil
}

// Keys.

func token(name string) string   { return strings.ReplaceAll(name, ".", "_") }
func untoken(tok string) string  { return strings.ReplaceAll(tok, "_", ".") }
func clusterKey(c string) string { return token(c) + ".cluster" }

func nodeKey(c, n string) string { return token(c) + ".node." + token(n) }

// clusterPrefix matches every key of a cluster.
func clusterPrefix(c string) string { return token(c) + ".>" }

// parseKey reads a key: the cluster, and the node ("" for the cluster's
// own key).
func parseKey(key string) (cluster, node string, ok bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 2 && parts[1] == "cluster" && parts[0] != "":
		return untoken(parts[0]), "", true
	case len(parts) == 3 && parts[1] == "node" && parts[0] != "" && parts[2] != "":
		return untoken(parts[0]), untoken(parts[2]), true
	}
	return "", "", false
}

// Permissions for NATS users, by subject: what an aggregator that publishes
// some clusters, and a fleet view, need to publish and subscribe to. Give
// each aggregator its own user (nkey, JWT or client certificate) with these,
// and NATS itself refuses a write outside its clusters.

// jsRead are the JetStream API subjects for reading a bucket: its stream's
// info, and the ordered consumers behind a watch or a key listing.
func jsRead(bucket string) []string {
	s := "KV_" + bucket
	return []string{"$JS.API.INFO", "$JS.API.STREAM.INFO." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.DELETE." + s + ".>", "$JS.API.CONSUMER.INFO." + s + ".>", "$JS.FC." + s + ".>"}
}

// PublisherSubjects returns the subjects an aggregator publishing clusters
// may publish to and subscribe to.
func PublisherSubjects(bucket string, clusters ...string) (publish, subscribe []string) {
	publish = jsRead(bucket)
	for _, c := range clusters {
		publish = append(publish, "$KV."+bucket+"."+clusterPrefix(c))
	}
	return publish, []string{"_INBOX.>"}
}

// ViewSubjects returns the subjects a fleet view may publish to and
// subscribe to: it reads the bucket and writes nothing.
func ViewSubjects(bucket string) (publish, subscribe []string) {
	return jsRead(bucket), []string{"_INBOX.>"}
}

// repeat runs session until ctx ends. After each failure it waits a
// growing, jittered while (250 ms up to 10 s); a session that lasted a
// minute starts the wait over.
func repeat(ctx context.Context, log *slog.Logger, msg string, session func(context.Context) error) {
	newBackoff := func() wait.Backoff {
		return wait.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 10 * time.Second}
	}
	backoff := newBackoff()
	for ctx.Err() == nil {
		began := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = newBackoff()
		}
		d := backoff.Step()
		log.Warn(msg, "error", err, "retry_in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

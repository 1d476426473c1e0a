package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeatlas/kubeatlas/aggregator/apply"
	"github.com/kubeatlas/kubeatlas/aggregator/state"
)

// Source names one cluster's API server.
type Source struct {
	// Name is the cluster name answers use.
	Name string
	// Kubeconfig is a kubeconfig path; empty means in-cluster config.
	Kubeconfig string
	// Context is the kubeconfig context; empty means the current one.
	Context string
}

// ParseSource reads NAME=KUBECONFIG[:CONTEXT], or NAME=in-cluster.
func ParseSource(s string) (Source, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return Source{}, fmt.Errorf("--kube %q: want NAME=KUBECONFIG[:CONTEXT] or NAME=in-cluster", s)
	}
	if !state.ValidName(name) {
		return Source{}, fmt.Errorf("--kube %q: the cluster name must be lower-case letters, digits, '-' and '.', as agents' --cluster", s)
	}
	if rest == "in-cluster" {
		return Source{Name: name}, nil
	}
	src := Source{Name: name, Kubeconfig: rest}
	if i := strings.LastIndexByte(rest, ':'); i > 0 {
		src.Kubeconfig, src.Context = rest[:i], rest[i+1:]
	}
	return src, nil
}

// RestConfig builds the client config for a source.
func (s Source) RestConfig() (*rest.Config, error) {
	if s.Kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("cluster %s: in-cluster config: %w", s.Name, err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: s.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: s.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: kubeconfig %s: %w", s.Name, s.Kubeconfig, err)
	}
	return cfg, nil
}

// Watcher keeps one cluster's API objects in the engine with shared informers.
// Informers relist after watch expiry and API server restarts; objects already
// known stay until the API says they are gone.
type Watcher struct {
	Source  Source
	Applier *apply.Applier
	Logger  *slog.Logger
	// Resync is the informers' resync period (0: none).
	Resync time.Duration
	// Synced, if set, is called once every informer has listed its objects.
	Synced func()
}

// Run watches until ctx ends. It returns an error only when the source is
// misconfigured; an unreachable API server is retried.
func (w *Watcher) Run(ctx context.Context) error {
	cfg, err := w.Source.RestConfig()
	if err != nil {
		return err
	}
	cfg.UserAgent = "kubeatlas-aggregator"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", w.Source.Name, err)
	}
	return w.run(ctx, cs, cfg.Host)
}

func (w *Watcher) run(ctx context.Context, cs kubernetes.Interface, host string) error {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("cluster", w.Source.Name)
	cluster := w.Source.Name
	factory := informers.NewSharedInformerFactoryWithOptions(cs, w.Resync, informers.WithTransform(stripManagedFields))
	apply := func(what string, err error) {
		if err != nil {
			log.Error("applying API object", "object", what, "error", err)
		}
	}
	objName := func(obj any) string {
		if m, err := metaOf(obj); err == nil {
			return m.GetNamespace() + "/" + m.GetName()
		}
		return "?"
	}
	add := func(inf cache.SharedIndexInformer, upsert func(obj any) error, del func(obj any) error) error {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { apply(objName(obj), upsert(obj)) },
			UpdateFunc: func(_, obj any) { apply(objName(obj), upsert(obj)) },
			DeleteFunc: func(obj any) {
				if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				apply(objName(obj), del(obj))
			},
		})
		return err
	}
	e := w.Applier
	handlers := []struct {
		inf    cache.SharedIndexInformer
		upsert func(any) error
		del    func(any) error
	}{
		{factory.Core().V1().Nodes().Informer(),
			func(o any) error { n := o.(*corev1.Node); return e.UpsertNodeAPI(cluster, n.Name, NodeAPI(n)) },
			func(o any) error {
				n, ok := o.(*corev1.Node)
				return ifOK(ok, func() error { return e.DeleteNodeAPI(cluster, n.Name) })
			}},
		{factory.Core().V1().Pods().Informer(),
			func(o any) error { return e.UpsertPod(PodRow(cluster, o.(*corev1.Pod))) },
			func(o any) error {
				p, ok := o.(*corev1.Pod)
				return ifOK(ok, func() error { return e.DeletePod(cluster, p.Namespace, p.Name) })
			}},
	}
	for _, inf := range []cache.SharedIndexInformer{
		factory.Apps().V1().DaemonSets().Informer(), factory.Apps().V1().ReplicaSets().Informer(),
		factory.Apps().V1().Deployments().Informer(), factory.Apps().V1().StatefulSets().Informer(),
		factory.Batch().V1().Jobs().Informer(),
	} {
		handlers = append(handlers, struct {
			inf    cache.SharedIndexInformer
			upsert func(any) error
			del    func(any) error
		}{inf, func(o any) error {
			if row := WorkloadRow(cluster, o); row != nil {
				return e.UpsertWorkload(row)
			}
			return nil
		}, func(o any) error {
			if row := WorkloadRow(cluster, o); row != nil {
				return e.DeleteWorkload(cluster, row.Kind, row.Namespace, row.Name)
			}
			return nil
		}})
	}
	for _, h := range handlers {
		if err := add(h.inf, h.upsert, h.del); err != nil {
			return fmt.Errorf("cluster %s: adding handler: %w", cluster, err)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	// The "kubernetes" Service's endpoints only corroborate a managed
	// control plane: watched on their own and never waited for, so a
	// role without access to them costs nothing but this evidence.
	apiEPs := informers.NewSharedInformerFactoryWithOptions(cs, w.Resync, informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes" }))
	setEPs := func(obj any) error {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			return e.SetAPIEndpoints(cluster, APIEndpointAddresses(s))
		}
		return nil
	}
	if err := add(apiEPs.Discovery().V1().EndpointSlices().Informer(), setEPs,
		func(any) error { return e.SetAPIEndpoints(cluster, nil) }); err != nil {
		return fmt.Errorf("cluster %s: adding handler: %w", cluster, err)
	}
	apiEPs.Start(ctx.Done())
	defer apiEPs.Shutdown()
	log.Info("watching the API server", "host", host)
	if u, err := url.Parse(host); err == nil && u.Hostname() != "" {
		if err := w.Applier.SetAPIHost(cluster, u.Hostname()); err != nil {
			log.Error("recording the API server's host", "error", err)
		}
	}
	w.identify(ctx, cs, log)
	if !cache.WaitForCacheSync(ctx.Done(), func() bool {
		for _, h := range handlers {
			if !h.inf.HasSynced() {
				return false
			}
		}
		return true
	}) {
		return nil
	}
	// Only now are absence findings (a pod process the API does not know, a
	// manifest without its mirror pod) true: the API's objects are all here.
	if err := w.Applier.SetAPI(cluster, "", "", true); err != nil {
		log.Error("recording the API connection", "error", err)
	}
	log.Info("API objects loaded")
	if w.Synced != nil {
		w.Synced()
	}
	<-ctx.Done()
	return nil
}

// identify records the cluster's kube-system UID and version, retrying until
// the API answers or ctx ends.
func (w *Watcher) identify(ctx context.Context, cs kubernetes.Interface, log *slog.Logger) {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Cap: 30 * time.Second, Steps: math.MaxInt32}
	for {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		if err == nil {
			version := ""
			if v, verr := cs.Discovery().ServerVersion(); verr == nil {
				version = v.GitVersion
			}
			// The cluster is identified; it counts as connected only once
			// the informers have synced.
			if err := w.Applier.SetAPI(w.Source.Name, string(ns.UID), version, false); err != nil {
				log.Error("recording API identity", "error", err)
			}
			return
		}
		delay := backoff.Step()
		log.Warn("reading the kube-system namespace", "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func ifOK(ok bool, f func() error) error {
	if !ok {
		return errors.New("deleted object of an unexpected type")
	}
	return f()
}

func metaOf(obj any) (metav1.Object, error) {
	switch o := obj.(type) {
	case metav1.Object:
		return o, nil
	case cache.DeletedFinalStateUnknown:
		return metaOf(o.Obj)
	}
	return nil, fmt.Errorf("no metadata in %T", obj)
}

// stripManagedFields drops what kubeatlas never reads before objects are cached.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

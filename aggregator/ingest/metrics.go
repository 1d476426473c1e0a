package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingest server's Prometheus metrics.
type Metrics struct {
	ConnectedAgents prometheus.Gauge
	Records         prometheus.Counter
	Messages        *prometheus.CounterVec
	Rejected        *prometheus.CounterVec
	Resyncs         prometheus.Counter
	Forgotten       *prometheus.CounterVec
	Redacted        prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectedAgents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubeatlas_connected_agents", Help: "Agent streams open now."}),
		Records:         prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeatlas_records_ingested_total", Help: "Process records applied from snapshots and deltas."}),
		Messages:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeatlas_agent_messages_total", Help: "Messages received from agents, by kind."}, []string{"kind"}),
		Rejected:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeatlas_agent_streams_refused_total", Help: "Agent streams ended for breaking a rule, by reason."}, []string{"reason"}),
		Resyncs:         prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeatlas_resyncs_requested_total", Help: "Resyncs asked of agents."}),
		Forgotten:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeatlas_nodes_forgotten_total", Help: "Nodes whose agent rows were forgotten, by reason."}, []string{"reason"}),
		Redacted:        prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeatlas_ingest_redactions_total", Help: "Records an agent sent with a secret the aggregator had to redact."}),
	}
	reg.MustRegister(m.ConnectedAgents, m.Records, m.Messages, m.Rejected, m.Resyncs, m.Forgotten, m.Redacted)
	return m
}

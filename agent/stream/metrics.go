package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	ScanDuration     prometheus.Histogram
	ProcessesSeen    prometheus.Gauge
	ProcessesSkipped prometheus.Counter
	BytesSent        prometheus.Counter
	MessagesSent     prometheus.Counter
	Reconnects       prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ScanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubeatlas_agent_scan_duration_seconds", Help: "Time one scan of the node took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		ProcessesSeen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeatlas_agent_processes_seen", Help: "Processes listed by the last scan.",
		}),
		ProcessesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeatlas_agent_processes_skipped_total", Help: "Processes that vanished or could not be read during a scan.",
		}),
		BytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeatlas_agent_bytes_sent_total", Help: "Protobuf payload bytes sent to the aggregator.",
		}),
		MessagesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeatlas_agent_messages_sent_total", Help: "Messages sent to the aggregator.",
		}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeatlas_agent_reconnects_total", Help: "Times the stream to the aggregator ended and was reopened.",
		}),
	}
	reg.MustRegister(m.ScanDuration, m.ProcessesSeen, m.ProcessesSkipped, m.BytesSent, m.MessagesSent, m.Reconnects)
	return m
}

package stream

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/wait"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Scanner produces a node's inventory; *collect.Collector is one.
type Scanner interface {
	Scan(ctx context.Context) (*v1.NodeInventory, error)
}

// Config configures a Client.
type Config struct {
	// ScanInterval is how often the node is scanned (default 10s).
	ScanInterval time.Duration
	// HeartbeatInterval is how often a heartbeat is sent when nothing changed
	// (default: ScanInterval).
	HeartbeatInterval time.Duration
	// ChunkBytes is the snapshot chunk budget (default DefaultChunkBytes).
	ChunkBytes int
	// BackoffMin and BackoffMax bound the reconnect delay (1s and 60s), before up
	// to a fifth more of jitter.
	BackoffMin, BackoffMax time.Duration
	// Logger receives connection events.
	Logger *slog.Logger
	// Metrics, if set, is updated as the client works.
	Metrics *Metrics
}

// Validate fills defaults and checks the config.
func (c *Config) Validate() error {
	if c.ScanInterval == 0 {
		c.ScanInterval = 10 * time.Second
	}
	if c.ScanInterval < 100*time.Millisecond {
		return fmt.Errorf("scan interval %v is shorter than 100ms", c.ScanInterval)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.ScanInterval
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = DefaultChunkBytes
	}
	if c.ChunkBytes > 1<<20-4096 {
		return fmt.Errorf("chunk size %d is over 1 MiB", c.ChunkBytes)
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 60 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("backoff max %v is below min %v", c.BackoffMax, c.BackoffMin)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client keeps one Connect stream to the aggregator open and feeds it.
type Client struct {
	cfg     Config
	api     v1.AgentServiceClient
	scanner Scanner

	mu    sync.Mutex
	acked uint64
}

// NewClient returns a client that sends what scanner finds over conn.
func NewClient(conn grpc.ClientConnInterface, scanner Scanner, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, api: v1.NewAgentServiceClient(conn), scanner: scanner}, nil
}

// Acked returns the newest generation the aggregator acknowledged on the
// current stream.
func (c *Client) Acked() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked
}

// newBackoff returns the reconnect delays: from min, doubling up to max,
// each with up to a fifth more as jitter, so that agents restarted together
// do not reconnect together.
func newBackoff(min, max time.Duration) *wait.Backoff {
	return &wait.Backoff{Duration: min, Factor: 2, Jitter: 0.2, Cap: max, Steps: math.MaxInt32}
}

// Run connects, streams and reconnects with jittered exponential backoff
// until ctx is done. It returns nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	backoff := newBackoff(c.cfg.BackoffMin, c.cfg.BackoffMax)
	for {
		healthy, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if healthy {
			backoff = newBackoff(c.cfg.BackoffMin, c.cfg.BackoffMax)
		}
		if m := c.cfg.Metrics; m != nil {
			m.Reconnects.Inc()
		}
		wait := backoff.Step()
		c.cfg.Logger.Warn("stream ended; reconnecting", "error", err, "code", status.Code(err).String(), "reason", Explain(err), "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one stream. healthy says whether the aggregator acked anything.
func (c *Client) session(ctx context.Context) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.api.Connect(ctx)
	if err != nil {
		return false, fmt.Errorf("opening stream: %w", err)
	}
	recvCh := make(chan *v1.ConnectResponse)
	errCh := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := st.Recv()
			if err != nil {
				errCh <- err
				return
			}
			select {
			case recvCh <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	c.mu.Lock()
	c.acked = 0
	c.mu.Unlock()
	// A failed Send means the stream ended; the receiver learns why.
	streamErr := func(err error) error {
		t := time.NewTimer(2 * time.Second)
		defer t.Stop()
		select {
		case rerr := <-errCh:
			return rerr
		case <-t.C:
			return err
		}
	}
	var gen uint64
	send := func(m *v1.ConnectRequest) error {
		if err := st.Send(m); err != nil {
			return err
		}
		if met := c.cfg.Metrics; met != nil {
			met.BytesSent.Add(float64(proto.Size(m)))
			met.MessagesSent.Inc()
		}
		return nil
	}
	inv, err := c.scan(ctx)
	if err != nil {
		return false, err
	}
	if err := send(&v1.ConnectRequest{Payload: &v1.ConnectRequest_Hello{Hello: &v1.Hello{
		Identity:          inv.Identity,
		ScanInterval:      durationpb.New(c.cfg.ScanInterval),
		HeartbeatInterval: durationpb.New(c.cfg.HeartbeatInterval),
	}}}); err != nil {
		return false, fmt.Errorf("sending hello: %w", streamErr(err))
	}
	// The aggregator answers a hello with its settings; they bound what
	// this stream may send.
	lim := limits{chunk: c.cfg.ChunkBytes, heartbeat: c.cfg.HeartbeatInterval}
	settingsT := time.NewTimer(settingsWait)
	select {
	case <-ctx.Done():
		settingsT.Stop()
		return false, ctx.Err()
	case err := <-errCh:
		settingsT.Stop()
		return false, err
	case m := <-recvCh:
		settingsT.Stop()
		if st := m.GetSettings(); st != nil {
			lim = c.apply(st)
		} else {
			return false, fmt.Errorf("the aggregator answered the hello with %T, not its settings", m.Payload)
		}
	case <-settingsT.C:
		c.cfg.Logger.Warn("no settings from the aggregator; using this agent's own limits", "waited", settingsWait)
	}
	inv = lim.capProcesses(inv, c.cfg.Logger)
	sendSnapshot := func(inv *v1.NodeInventory) error {
		chunks := Chunks(inv, lim.chunk)
		snapGen := gen + 1
		for _, ch := range chunks {
			gen++
			ch.SnapshotGeneration = snapGen
			if err := send(&v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_SnapshotChunk{SnapshotChunk: ch}}); err != nil {
				return fmt.Errorf("sending snapshot: %w", streamErr(err))
			}
		}
		c.cfg.Logger.Info("snapshot sent", "processes", len(inv.Processes), "manifests", len(inv.Manifests), "chunks", len(chunks), "generation", gen)
		return nil
	}
	if err := sendSnapshot(inv); err != nil {
		return false, err
	}
	state := NewState(inv)
	lastSend := time.Now()
	scanT := time.NewTicker(c.cfg.ScanInterval)
	defer scanT.Stop()
	hbT := time.NewTicker(lim.heartbeat)
	defer hbT.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = st.CloseSend()
			return healthy, ctx.Err()
		case err := <-errCh:
			return healthy, err
		case m := <-recvCh:
			switch p := m.Payload.(type) {
			case *v1.ConnectResponse_Ack:
				healthy = true
				c.mu.Lock()
				c.acked = p.Ack.Generation
				c.mu.Unlock()
			case *v1.ConnectResponse_Resync:
				c.cfg.Logger.Info("aggregator asked for a resync", "reason", p.Resync.Reason)
				inv, err := c.scan(ctx)
				if err != nil {
					return healthy, err
				}
				inv = lim.capProcesses(inv, c.cfg.Logger)
				if err := sendSnapshot(inv); err != nil {
					return healthy, err
				}
				state, lastSend = NewState(inv), time.Now()
			case *v1.ConnectResponse_Settings:
				lim = c.apply(p.Settings)
				hbT.Reset(lim.heartbeat)
			}
		case <-scanT.C:
			inv, err := c.scan(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return healthy, ctx.Err()
				}
				c.cfg.Logger.Warn("scan failed", "error", err)
				continue
			}
			inv = lim.capProcesses(inv, c.cfg.Logger)
			next := NewState(inv)
			if d := state.Diff(next); d != nil {
				d.WallClock = timestamppb.Now()
				d.Stats = inv.Stats
				// A large change goes as several deltas, each within the
				// chunk budget, as a snapshot does.
				for _, part := range SplitDelta(d, lim.chunk) {
					gen++
					if err := send(&v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_Delta{Delta: part}}); err != nil {
						return healthy, fmt.Errorf("sending delta: %w", streamErr(err))
					}
				}
				state, lastSend = next, time.Now()
			}
		case <-hbT.C:
			if time.Since(lastSend) < lim.heartbeat*9/10 {
				continue
			}
			if err := send(&v1.ConnectRequest{Generation: gen, Payload: &v1.ConnectRequest_Heartbeat{Heartbeat: &v1.Heartbeat{WallClock: timestamppb.Now()}}}); err != nil {
				return healthy, fmt.Errorf("sending heartbeat: %w", streamErr(err))
			}
			lastSend = time.Now()
		}
	}
}

func (c *Client) scan(ctx context.Context) (*v1.NodeInventory, error) {
	start := time.Now()
	inv, err := c.scanner.Scan(ctx)
	if m := c.cfg.Metrics; m != nil {
		m.ScanDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			m.ProcessesSeen.Set(float64(inv.GetStats().GetProcessesSeen()))
			m.ProcessesSkipped.Add(float64(inv.GetStats().GetProcessesSkipped()))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("scanning: %w", err)
	}
	return inv, nil
}

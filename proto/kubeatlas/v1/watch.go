package kubeatlasv1

// Events returns the events a response carries, in order: its batch when it
// has one, and otherwise the response itself.
func (x *WatchResponse) Events() []*WatchResponse {
	if len(x.GetBatch()) > 0 {
		return x.Batch
	}
	if x == nil {
		return nil
	}
	return []*WatchResponse{x}
}

// Resumable reports whether a watcher that handled this event can resume
// after it: changes and the SYNCED and RESUMED markers carry an index; the
// events of the current state and RESYNC do not.
func (x *WatchResponse) Resumable() bool { return x.GetIndex() != 0 }

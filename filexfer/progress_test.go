package filexfer

import "testing"

// A folder's transfer reports the current file's progress beside the
// whole's: its bytes counted from where the whole stood when it began.
func TestCurrentFileProgress(t *testing.T) {
	var tr Transfer
	tr.setProgress(Progress{Done: 100, Total: 1000, Current: "a", CurrentSize: 100})
	tr.setProgress(Progress{Done: 300, Total: 1000, Current: "b", CurrentSize: 500})
	if tr.CurrentDone != 200 || tr.CurrentSize != 500 {
		t.Fatalf("b after its first chunk: %d of %d, want 200 of 500", tr.CurrentDone, tr.CurrentSize)
	}
	tr.setProgress(Progress{Done: 600, Total: 1000, Current: "b", CurrentSize: 500})
	if tr.CurrentDone != 500 || tr.Done != 600 {
		t.Fatalf("b done: %d (whole %d), want 500 (600)", tr.CurrentDone, tr.Done)
	}
}

package store

import (
	"fmt"
	"testing"
)

// The SQL that totals a peer's usage charges what DiskCost charges.
func TestDiskCostSQLIsDiskCost(t *testing.T) {
	if want := fmt.Sprintf("(%d + %d * length(sealed))", diskCostRow, diskCostByte); diskCostSQL != want {
		t.Fatalf("diskCostSQL is %q, DiskCost charges %s", diskCostSQL, want)
	}
	if DiskCost(0) != diskCostRow || DiskCost(1000)-DiskCost(0) != 1000*diskCostByte {
		t.Fatal("DiskCost is not row + per-byte cost")
	}
}

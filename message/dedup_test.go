package message

import "testing"

func key(i int) dedupKey {
	var k dedupKey
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestDedupBounded(t *testing.T) {
	d := newDedup(100)
	for i := range 250 {
		if st, _ := d.begin(key(i)); st != seenNew {
			t.Fatalf("key %d: state %v, want new", i, st)
		}
		d.finish(key(i), true)
	}
	if n := d.len(); n != 100 {
		t.Fatalf("remembers %d keys, want 100", n)
	}
	if st, _ := d.begin(key(249)); st != seenDone {
		t.Fatal("the newest key was forgotten")
	}
	if st, _ := d.begin(key(150)); st != seenDone {
		t.Fatal("the oldest kept key was forgotten")
	}
	if st, _ := d.begin(key(149)); st != seenNew {
		t.Fatal("a key beyond the limit is still remembered")
	}
	d.finish(key(149), true)
}

func TestDedupFailedDeliveryIsForgotten(t *testing.T) {
	d := newDedup(10)
	d.begin(key(1))
	d.finish(key(1), false)
	if st, _ := d.begin(key(1)); st != seenNew {
		t.Fatal("a failed delivery is remembered as delivered")
	}
}

func TestDedupBusyWaits(t *testing.T) {
	d := newDedup(10)
	d.begin(key(1))
	st, wait := d.begin(key(1))
	if st != seenBusy {
		t.Fatalf("state %v, want busy", st)
	}
	select {
	case <-wait:
		t.Fatal("wait closed before finish")
	default:
	}
	d.finish(key(1), true)
	<-wait
	if st, _ := d.begin(key(1)); st != seenDone {
		t.Fatalf("after finish: state %v, want done", st)
	}
}

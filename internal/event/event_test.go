package event

import "testing"

func TestSubscribeCancelPublish(t *testing.T) {
	var r Registry[int]
	var a, b []int
	cancelA := r.Subscribe(func(v int) { a = append(a, v) })
	r.Subscribe(func(v int) { b = append(b, v) })
	r.Publish(1)
	cancelA()
	r.Publish(2)
	if len(a) != 1 || a[0] != 1 {
		t.Fatalf("cancelled subscriber got %v, want [1]", a)
	}
	if len(b) != 2 || b[0] != 1 || b[1] != 2 {
		t.Fatalf("subscriber got %v, want [1 2]", b)
	}
}

func TestSubscriberMayCancelItselfWhilePublished(t *testing.T) {
	var r Registry[int]
	var cancel func()
	calls := 0
	cancel = r.Subscribe(func(int) { calls++; cancel() })
	r.Publish(1)
	r.Publish(2)
	if calls != 1 {
		t.Fatalf("called %d times, want 1", calls)
	}
}

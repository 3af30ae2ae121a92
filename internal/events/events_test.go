package events

import (
	"testing"
	"time"
)

func TestOrderAndFanOut(t *testing.T) {
	b := NewBus(time.Minute)
	b.MarkLive()
	s1, s2 := b.Subscribe(8), b.Subscribe(8)
	defer s1.Close()
	defer s2.Close()
	kinds := []Kind{ContainerCreated, ContainerStarted, ContainerStopped, ContainerDeleted}
	for _, k := range kinds {
		b.Publish(Event{Kind: k, ContainerID: "c1"})
	}
	for _, s := range []*Subscription{s1, s2} {
		for _, want := range kinds {
			ev := <-s.Events()
			if ev.Kind != want || ev.ContainerID != "c1" || ev.At.IsZero() {
				t.Fatalf("got %+v, want %v of c1 with a time", ev, want)
			}
		}
	}
}

// A subscriber that never reads must not block publishers: it is dropped
// once its buffer fills, and the others keep receiving.
func TestSlowSubscriberIsDropped(t *testing.T) {
	b := NewBus(time.Minute)
	b.MarkLive()
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	defer fast.Close()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			b.Publish(Event{Kind: ContainerStarted, ContainerID: "c"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	if !slow.Dropped() {
		t.Fatal("slow subscriber was not dropped")
	}
	n := 0
	for range slow.Events() { // buffered events, then closed
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber got %d buffered events, want 2", n)
	}
	if len(fast.Events()) != 50 {
		t.Fatalf("fast subscriber has %d events, want 50", len(fast.Events()))
	}
	if b.Subscribers() != 1 {
		t.Fatalf("%d subscribers, want 1", b.Subscribers())
	}
	slow.Close() // harmless after a drop
}

// Events published while reconciling at start reach subscribers that
// connect afterwards, until the backlog expires.
func TestStartupBacklogReplay(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBus(time.Minute)
	b.now = func() time.Time { return now }
	b.Publish(Event{Kind: ContainerStopped, ContainerID: "down"})
	b.MarkLive()
	b.Publish(Event{Kind: ContainerStarted, ContainerID: "live"}) // nobody listens: gone

	s := b.Subscribe(4)
	if ev := <-s.Events(); ev.ContainerID != "down" || ev.Kind != ContainerStopped {
		t.Fatalf("first event %+v, want the replayed stop of down", ev)
	}
	if len(s.Events()) != 0 {
		t.Fatalf("live event published before subscribing was replayed")
	}
	s.Close()

	now = now.Add(2 * time.Minute)
	s = b.Subscribe(4)
	defer s.Close()
	if len(s.Events()) != 0 {
		t.Fatal("backlog replayed after it expired")
	}
}

func TestNilBus(t *testing.T) {
	var b *Bus
	b.Publish(Event{})
	b.MarkLive()
	if b.Subscribers() != 0 {
		t.Fatal("nil bus has subscribers")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	b := NewBus(time.Minute)
	b.MarkLive()
	s := b.Subscribe(1)
	b.Close()
	if _, ok := <-s.Events(); ok || s.Dropped() {
		t.Fatal("subscription open, or marked dropped, after Close")
	}
	if _, ok := <-b.Subscribe(1).Events(); ok {
		t.Fatal("subscription after Close is open")
	}
	b.Publish(Event{}) // no panic on closed channels
}

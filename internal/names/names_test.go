package names

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestDeliveredNameIsReserved(t *testing.T) {
	r := New("pod")
	tk, _, err := r.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(context.Background(), "id1", nil, nil)
	if _, _, err := r.Acquire(context.Background(), "a"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second acquire: got %v, want AlreadyExists", err)
	}
	r.Release("a", "id1")
	if _, _, err := r.Acquire(context.Background(), "a"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestUndeliveredResultIsHandedOverOnce(t *testing.T) {
	r := New("pod")
	tk, _, _ := r.Acquire(context.Background(), "a")
	tk.Done(cancelled(), "id1", nil, nil)
	_, got, err := r.Acquire(context.Background(), "a")
	if err != nil || got != "id1" {
		t.Fatalf("retry: got %q, %v; want id1", got, err)
	}
	if _, _, err := r.Acquire(context.Background(), "a"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("third acquire: got %v, want AlreadyExists", err)
	}
}

func TestRetryWaitsForInflightCreate(t *testing.T) {
	r := New("container")
	tk, _, _ := r.Acquire(context.Background(), "a")
	go func() {
		time.Sleep(20 * time.Millisecond)
		tk.Done(cancelled(), "id1", nil, nil)
	}()
	_, got, err := r.Acquire(context.Background(), "a")
	if err != nil || got != "id1" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestRetryGivesUpWithItsOwnDeadline(t *testing.T) {
	r := New("pod")
	r.Acquire(context.Background(), "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := r.Acquire(ctx, "a"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

func TestFailedCreateFreesName(t *testing.T) {
	r := New("pod")
	tk, _, _ := r.Acquire(context.Background(), "a")
	tk.Done(context.Background(), "", errors.New("boom"), nil)
	if _, _, err := r.Acquire(context.Background(), "a"); err != nil {
		t.Fatalf("after failure: %v", err)
	}
}

func TestExpireCleansUncollected(t *testing.T) {
	r := New("pod")
	tk, _, _ := r.Acquire(context.Background(), "a")
	var cleaned string
	tk.Done(cancelled(), "id1", nil, func(_ context.Context, id string) { cleaned = id })
	if n := r.Expire(context.Background(), time.Hour); n != 0 {
		t.Fatalf("expired too early: %d", n)
	}
	if n := r.Expire(context.Background(), 0); n != 1 || cleaned != "id1" {
		t.Fatalf("expire: n=%d cleaned=%q", n, cleaned)
	}
	if _, _, err := r.Acquire(context.Background(), "a"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// cancelled is the context of a caller that gave up.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// A create that finished just before its caller's deadline may have
// missed it with its reply: a retry gets the object, and it is never
// cleaned up as undelivered.
func TestDoneNearDeadline(t *testing.T) {
	r := New("pod")
	tk, _, err := r.Acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliveryMargin/2)
	defer cancel()
	tk.Done(ctx, "id1", nil, func(context.Context, string) { t.Error("cleaned up") })
	if n := r.Expire(context.Background(), 0); n != 0 {
		t.Errorf("Expire cleaned %d", n)
	}
	if _, prior, err := r.Acquire(context.Background(), "k"); err != nil || prior != "id1" {
		t.Fatalf("retry = %q, %v; want id1", prior, err)
	}
	// Handed over once: the next retry finds it taken.
	if _, _, err := r.Acquire(context.Background(), "k"); err == nil {
		t.Error("a second retry got the object too")
	}
	tk2, _, err := r.Acquire(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	tk2.Done(ctx2, "id2", nil, nil)
	if _, _, err := r.Acquire(context.Background(), "other"); err == nil {
		t.Error("a create delivered with time to spare was handed to a retry")
	}
}

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
	tk.Done("id1", nil, true, nil)
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
	tk.Done("id1", nil, false, nil)
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
		tk.Done("id1", nil, false, nil)
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
	tk.Done("", errors.New("boom"), true, nil)
	if _, _, err := r.Acquire(context.Background(), "a"); err != nil {
		t.Fatalf("after failure: %v", err)
	}
}

func TestExpireCleansUncollected(t *testing.T) {
	r := New("pod")
	tk, _, _ := r.Acquire(context.Background(), "a")
	var cleaned string
	tk.Done("id1", nil, false, func(_ context.Context, id string) { cleaned = id })
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

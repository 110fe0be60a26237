package call

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/parleyhq/parley/plugins/call/sfu"
)

// An activation the host killed (Abort) leaves the process's media plane
// open, and the next activation's New takes the same one over; Stop closes
// it, and the New after that makes another.
func TestAbortKeepsTheMediaPlane(t *testing.T) {
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	old := environ
	environ = func() []string { return []string{"PARLEY_CALL_UDP_PORT=" + strconv.Itoa(port)} }
	t.Cleanup(func() { environ = old })
	ctx := context.Background()

	first := New().(*Plugin)
	plane, ok := first.media.(*sfuMedia)
	if !ok {
		t.Fatalf("no media plane: %T", first.media)
	}
	if err := first.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	next := New().(*Plugin)
	if next.media != Media(plane) {
		t.Fatal("the activation after an abort made a new media plane")
	}
	if _, err := plane.s.Offer(ctx, "c", "u", "d", "v=0", false); errors.Is(err, sfu.ErrClosed) {
		t.Fatal("the media plane was closed by the abort")
	}
	if err := next.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := plane.s.Offer(ctx, "c", "u", "d", "v=0", false); !errors.Is(err, sfu.ErrClosed) {
		t.Fatalf("after Stop, the media plane answers: %v", err)
	}
	last := New().(*Plugin)
	defer last.Stop(ctx)
	if last.media == Media(plane) {
		t.Fatal("the activation after a stop took the closed media plane")
	}
}

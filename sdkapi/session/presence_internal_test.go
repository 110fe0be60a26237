package session

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// BenchmarkOnlineUsers answers getOnlineUsers for one company of a
// manager holding 1,000 companies of 50 connected users each: the cost
// (under the manager's one lock, which every connect and disconnect
// takes) is that company's, not every session's.
func BenchmarkOnlineUsers(b *testing.B) {
	m := &Manager{
		cfg:      Config{MaxSessionsPerUser: 10, PresenceGrace: time.Minute},
		sessions: map[string]map[string]map[*session]struct{}{},
		offline:  map[string]map[string]*time.Timer{},
		links:    map[userKey]map[*session]struct{}{},
		connects: map[connectKey]*rate.Limiter{},
		changes:  map[string]map[string]string{},
	}
	for a := range 1000 {
		for u := range 50 {
			if err := m.join(&session{app: fmt.Sprintf("app-%d", a), user: fmt.Sprintf("user-%d", u)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		if n := len(m.OnlineUsers("app-500")); n != 50 {
			b.Fatalf("%d online", n)
		}
	}
}

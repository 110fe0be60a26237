package sfu

import (
	"slices"
	"testing"
)

// TestRecvLog: gaps are asked for until they arrive or maxAsks runs out,
// across the sequence numbers' wrap; a jump too far to be loss asks for
// nothing.
func TestRecvLog(t *testing.T) {
	var l recvLog
	ask := func(want ...uint16) {
		t.Helper()
		if got := l.missingSince(nil); !slices.Equal(got, want) {
			t.Fatalf("missing %v, want %v", got, want)
		}
	}
	ask()
	for _, s := range []uint16{65530, 65531, 65533, 0, 1, 3} { // 65532, 65534, 65535 and 2 lost
		l.add(s)
	}
	ask(65532, 65534, 65535, 2)
	l.add(65534) // late
	l.add(2)     // resent
	ask(65532, 65535)
	for range maxAsks - 2 {
		ask(65532, 65535)
	}
	ask() // asked maxAsks times each: given up
	l.add(4)
	ask()

	l.add(4 + logSize/2 + 1) // the stream jumped: not a loss of 257 packets
	ask()
	l.add(4 + logSize/2 + 3)
	ask(4 + logSize/2 + 2)
}

// FuzzRecvLog: whatever order sequence numbers come in, a NACK names only
// numbers that did not arrive, within the window below the highest seen,
// each at most maxAsks times.
func FuzzRecvLog(f *testing.F) {
	f.Add([]byte{1, 1, 3, 1, 0xff, 2, 2})
	f.Add([]byte{0, 0x80, 1, 0x7f, 5})
	f.Fuzz(func(t *testing.T, steps []byte) {
		var l recvLog
		got := map[uint16]bool{}
		asked := map[uint16]int{}
		seq := uint16(65500)
		for i, b := range steps {
			switch {
			case b == 0xff: // a tick
				for _, s := range l.missingSince(nil) {
					if got[s] {
						t.Fatalf("asked for %d, which arrived", s)
					}
					if d := l.top - s; d == 0 || d >= logSize {
						t.Fatalf("asked for %d with the top at %d", s, l.top)
					}
					if asked[s]++; asked[s] > maxAsks {
						t.Fatalf("asked for %d %d times", s, asked[s])
					}
				}
			case b&0x80 != 0: // an old one, late
				s := seq - uint16(b&0x7f)
				l.add(s)
				got[s] = true
			default: // ahead by b (b-1 lost)
				seq += uint16(b) + uint16(i%2)
				l.add(seq)
				got[seq] = true
				for s := seq - uint16(b) - uint16(i%2) + 1; s != seq; s++ {
					delete(got, s) // a slot reused, or never there
					delete(asked, s)
				}
			}
		}
	})
}

package sdkapitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleyhq/parley/plugins"
)

// Frame is any frame the session sends: an answer (ID with Result or
// Error) or a push (Event, Data and, for a durable event, Seq).
type Frame struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *plugins.Error  `json:"error"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Seq    uint64          `json:"seq"`
}

// CommandResult answers a command: {seq, events}.
type CommandResult struct {
	Seq    uint64  `json:"seq"`
	Events []Frame `json:"events"`
}

// Device is one connected browser: a real WebSocket client speaking the
// session protocol. A reader goroutine, owned by the device, reads its
// frames until the socket closes or Close stops it (at the latest when
// the test ends).
//
// Pushes read while waiting for an answer wait in a queue (Pending takes
// them first). Which pushes a test wants is its own business; the device
// keeps what that needs: the seqs its own commands' answers carried
// (Answered) and the newest event seq it got (Seen).
type Device struct {
	T    testing.TB
	Name string
	ID   string // the session's device id, when the test has set it

	// Answered holds the seqs of the events its own commands' answers
	// carried; Seen is the newest event seq the device got (Cmd raises
	// it, and so should a test for each push it takes).
	Answered map[uint64]bool
	Seen     uint64

	// Queries names the methods that are queries: Fails sends them with
	// minSeq, as Query does.
	Queries []string

	c        *websocket.Conn
	frames   chan Frame
	queue    []Frame // pushes read while waiting for an answer
	nextID   int
	closeErr error         // why the socket closed; read once frames is closed
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the reader has returned
	once     sync.Once
}

// WS dials the session endpoint /v2/ws; the socket is closed when the test
// ends.
func (s *Server) WS(t testing.TB) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.HTTP.URL, "http")+"/v2/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// Dial opens a socket to the session endpoint, not yet connected (the
// test sends connect or joinCallURL itself); name is how failures name
// the device. The device is closed when the test ends.
func (s *Server) Dial(t testing.TB, name string) *Device {
	t.Helper()
	d := &Device{
		T: t, Name: name, c: s.WS(t),
		Answered: map[uint64]bool{},
		frames:   make(chan Frame, 1024),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go d.read() // until the socket closes or Close
	t.Cleanup(d.Close)
	return d
}

// Close closes the socket and waits for the reader to return.
func (d *Device) Close() {
	d.once.Do(func() {
		close(d.stop)
		d.c.CloseNow()
		<-d.done
	})
}

func (d *Device) read() {
	defer close(d.done)
	defer close(d.frames)
	for {
		_, b, err := d.c.Read(context.Background())
		if err != nil {
			d.closeErr = err
			return
		}
		var f Frame
		if err := json.Unmarshal(b, &f); err != nil {
			f = Frame{Event: "undecodable frame: " + string(b)}
		}
		select {
		case d.frames <- f:
		case <-d.stop:
			return
		}
	}
}

// Frames is every frame as read, bypassing the queue; it is closed when
// the socket closes.
func (d *Device) Frames() <-chan Frame { return d.frames }

// Next returns the next frame read (not one in the queue); what is what
// the test is waiting for, for the failure.
func (d *Device) Next(what string) Frame {
	d.T.Helper()
	select {
	case f, ok := <-d.frames:
		if !ok {
			d.T.Fatalf("%s: the socket closed while waiting for %s: %v", d.Name, what, d.closeErr)
		}
		return f
	case <-time.After(10 * time.Second):
		d.T.Fatalf("%s: timed out waiting for %s", d.Name, what)
	}
	return Frame{}
}

// Pending returns the first push in the queue, or else the next frame.
func (d *Device) Pending(what string) Frame {
	d.T.Helper()
	if len(d.queue) > 0 {
		f := d.queue[0]
		d.queue = d.queue[1:]
		return f
	}
	return d.Next(what)
}

// TakeQueue empties the queue and returns what it held.
func (d *Device) TakeQueue() []Frame {
	q := d.queue
	d.queue = nil
	return q
}

// Call sends a request and returns its answer; pushes that come first
// wait in the queue. It does not stop the test (it may run on another
// goroutine): a failed write, a closed socket or no answer in 10 seconds
// is an error with code write_failed, closed or timeout.
func (d *Device) Call(method string, params any) (json.RawMessage, *plugins.Error) {
	d.T.Helper()
	d.nextID++
	id := strconv.Itoa(d.nextID)
	req := MustJSON(map[string]any{"id": d.nextID, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.c.Write(ctx, websocket.MessageText, req); err != nil {
		d.T.Errorf("%s: %v", d.Name, err)
		return nil, &plugins.Error{Code: "write_failed"}
	}
	timeout := time.After(10 * time.Second)
	for {
		var f Frame
		select {
		case g, ok := <-d.frames:
			if !ok {
				return nil, &plugins.Error{Code: "closed", Message: fmt.Sprint(d.closeErr)}
			}
			f = g
		case <-timeout:
			d.T.Errorf("%s: timed out waiting for the answer to %s", d.Name, method)
			return nil, &plugins.Error{Code: "timeout"}
		}
		switch {
		case f.ID == nil:
			d.queue = append(d.queue, f)
		case string(f.ID) != id:
			d.T.Errorf("%s: answer %s while waiting for %s", d.Name, f.ID, id)
		case f.Error != nil:
			return nil, f.Error
		default:
			return f.Result, nil
		}
	}
}

// MustCall calls a method that must succeed and returns its answer.
func (d *Device) MustCall(method string, params any) json.RawMessage {
	d.T.Helper()
	ans, err := d.Call(method, params)
	if err != nil {
		d.T.Fatalf("%s: %s %s: %v", d.Name, method, MustJSON(params), err)
	}
	return ans
}

// Cmd runs a command that must succeed; the events its answer carries
// are Answered, and Seen rises to its seq.
func (d *Device) Cmd(method string, params any) CommandResult {
	d.T.Helper()
	ans := d.MustCall(method, params)
	var res CommandResult
	if err := json.Unmarshal(ans, &res); err != nil {
		d.T.Fatalf("%s: %s answered %s: %v", d.Name, method, ans, err)
	}
	for _, e := range res.Events {
		d.Answered[e.Seq] = true
	}
	d.Seen = max(d.Seen, res.Seq)
	return res
}

// Query asks a query that must succeed and decodes its answer into v.
// Like the SDK, it reads what the device has seen (see Fresh).
func (d *Device) Query(method string, params map[string]any, v any) {
	d.T.Helper()
	ans := d.MustCall(method, d.Fresh(params))
	if err := json.Unmarshal(ans, v); err != nil {
		d.T.Fatalf("%s: %s answered %s: %v", d.Name, method, ans, err)
	}
}

// Fresh adds minSeq, the newest event seq the device got, to a query's
// params (a copy), unless they have one or the device got none.
func (d *Device) Fresh(params map[string]any) map[string]any {
	if _, ok := params["minSeq"]; ok || d.Seen == 0 {
		return params
	}
	out := maps.Clone(params)
	out["minSeq"] = d.Seen
	return out
}

// Fails calls a method that must be refused with code; one of Queries
// reads what the device has seen, as Query does.
func (d *Device) Fails(code plugins.Code, method string, params map[string]any) {
	d.T.Helper()
	if slices.Contains(d.Queries, method) {
		params = d.Fresh(params)
	}
	if ans, err := d.Call(method, params); err == nil || err.Code != code {
		d.T.Errorf("%s: %s %s: %s %v, want %s", d.Name, method, MustJSON(params), ans, err, code)
	}
}

// Drain forgets the pushes received so far: the queue, and what arrives
// until the socket has been quiet for 100ms.
func (d *Device) Drain() {
	d.queue = nil
	for {
		select {
		case _, ok := <-d.frames:
			if !ok {
				return
			}
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

// Closed waits for the server to close the socket and returns its code
// and reason (-1 and the error when it closed without a close frame).
func (d *Device) Closed() (websocket.StatusCode, string) {
	d.T.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-d.frames:
			if ok {
				continue
			}
			var ce websocket.CloseError
			if errors.As(d.closeErr, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, fmt.Sprint(d.closeErr)
		case <-timeout:
			d.T.Fatalf("%s: the socket stayed open", d.Name)
		}
	}
}

// Decode unmarshals data into a T, failing the test if it cannot.
func Decode[T any](t testing.TB, data json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, data, err)
	}
	return v
}

// MustJSON marshals v, panicking if it cannot.
func MustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

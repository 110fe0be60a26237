package plugins

import (
	"time"

	pb "github.com/parleyhq/parley/plugins/proto"
)

// Conversions between the contract's Go types and their protobuf messages.

func errToPB(err error) *pb.Error {
	if err == nil {
		return nil
	}
	e := AsCoded(err)
	return &pb.Error{Code: string(e.Code), Message: e.Message}
}

func errFromPB(e *pb.Error) error {
	if e == nil {
		return nil
	}
	return &Error{Code: Code(e.Code), Message: e.Message}
}

func manifestToPB(m Manifest) *pb.ManifestMsg {
	out := &pb.ManifestMsg{
		Id: m.ID, Version: m.Version, Protocol: int32(m.Protocol), Commands: m.Commands,
		Subscribes: m.Subscribes, Streams: m.Streams, Queries: m.Queries,
	}
	for _, e := range m.Events {
		out.Events = append(out.Events, &pb.EventTypeMsg{Name: e.Name, Durable: e.Durable})
	}
	for _, c := range m.Client {
		out.Client = append(out.Client, &pb.ClientMethodMsg{Name: c.Name, Stream: c.Stream})
	}
	for _, p := range m.Permissions {
		out.Permissions = append(out.Permissions, string(p))
	}
	return out
}

func manifestFromPB(m *pb.ManifestMsg) Manifest {
	out := Manifest{
		ID: m.Id, Version: m.Version, Protocol: int(m.Protocol), Commands: m.Commands,
		Subscribes: m.Subscribes, Streams: m.Streams, Queries: m.Queries,
	}
	for _, e := range m.Events {
		out.Events = append(out.Events, EventType{Name: e.Name, Durable: e.Durable})
	}
	for _, c := range m.Client {
		out.Client = append(out.Client, ClientMethod{Name: c.Name, Stream: c.Stream})
	}
	for _, p := range m.Permissions {
		out.Permissions = append(out.Permissions, Permission(p))
	}
	return out
}

func commandToPB(c Command) *pb.CommandMsg {
	return &pb.CommandMsg{Name: c.Name, Stream: c.Stream, Company: c.Company, Actor: c.Actor, Payload: c.Payload, Version: c.Version, Device: c.Device}
}

func commandFromPB(c *pb.CommandMsg) Command {
	return Command{Name: c.Name, Stream: c.Stream, Company: c.Company, Actor: c.Actor, Payload: c.Payload, Version: c.Version, Device: c.Device}
}

func newEventsToPB(evs []NewEvent) []*pb.NewEventMsg {
	out := make([]*pb.NewEventMsg, len(evs))
	for i, e := range evs {
		out[i] = &pb.NewEventMsg{Type: e.Type, Stream: e.Stream, Audience: e.Audience, Payload: e.Payload, Seal: e.Seal, Device: e.Device, Company: e.Company, Expect: e.Expect}
	}
	return out
}

func newEventsFromPB(evs []*pb.NewEventMsg) []NewEvent {
	out := make([]NewEvent, len(evs))
	for i, e := range evs {
		out[i] = NewEvent{Type: e.Type, Stream: e.Stream, Audience: e.Audience, Payload: e.Payload, Seal: e.Seal, Device: e.Device, Company: e.Company, Expect: e.Expect}
	}
	return out
}

func eventsToPB(evs []Event) []*pb.EventMsg {
	out := make([]*pb.EventMsg, len(evs))
	for i, e := range evs {
		out[i] = &pb.EventMsg{
			Seq: e.Seq, Id: e.ID, TimeUnixNano: e.Time.UnixNano(), Type: e.Type, Stream: e.Stream,
			Version: e.Version, Company: e.Company, Actor: e.Actor, Audience: e.Audience, Payload: e.Payload,
			Erased: e.Erased,
		}
	}
	return out
}

func eventsFromPB(evs []*pb.EventMsg) []Event {
	out := make([]Event, len(evs))
	for i, e := range evs {
		out[i] = Event{
			Seq: e.Seq, ID: e.Id, Time: time.Unix(0, e.TimeUnixNano).UTC(), Type: e.Type, Stream: e.Stream,
			Version: e.Version, Company: e.Company, Actor: e.Actor, Audience: e.Audience, Payload: e.Payload,
			Erased: e.Erased,
		}
	}
	return out
}

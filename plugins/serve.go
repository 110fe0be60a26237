package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	pb "github.com/parleyhq/parley/plugins/proto"
	"google.golang.org/grpc"
)

// Handshake is the go-plugin handshake between the kernel and a plugin
// process. The cookie only keeps a plugin binary from being run by hand by
// mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "PARLEY_PLUGIN_COOKIE",
	MagicCookieValue: "parley-kernel-plugin-7c1f0e52",
}

// pluginKey names the one plugin a Parley plugin process serves.
const pluginKey = "parley"

// VersionedPlugins is what both sides give go-plugin: the protocol
// versions this package speaks. The kernel passes the same map and
// go-plugin picks the highest version both have.
func VersionedPlugins(impl Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {pluginKey: &grpcPlugin{impl: impl}}}
}

// Serve runs p as an out-of-process plugin: the whole main of a plugin
// binary is `plugins.Serve(myPlugin)`. It speaks the handshake on stdout
// (print nothing else there: log to stderr, which the kernel tags with the
// plugin id) and serves until the kernel stops it.
func Serve(p Plugin) {
	m := p.Manifest()
	if err := m.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "parley plugin:", err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(p),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: m.ID, Output: os.Stderr, Level: hclog.Warn, JSONFormat: true,
		}),
	})
}

// grpcPlugin binds the contract to go-plugin's gRPC transport.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, &pluginServer{impl: p.impl, broker: broker})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Remote{client: pb.NewPluginClient(conn), broker: broker}, nil
}

// pluginServer runs in the plugin process and calls the implementation.
type pluginServer struct {
	pb.UnimplementedPluginServer
	impl   Plugin
	broker *plugin.GRPCBroker
	conn   *grpc.ClientConn // to the kernel API of this activation
}

func (s *pluginServer) Manifest(context.Context, *pb.Empty) (*pb.ManifestMsg, error) {
	return manifestToPB(s.impl.Manifest()), nil
}

func (s *pluginServer) Start(ctx context.Context, req *pb.StartRequest) (*pb.Result, error) {
	conn, err := s.broker.Dial(req.KernelBrokerId)
	if err != nil {
		return &pb.Result{Error: errToPB(Errorf(CodeUnavailable, "dial the kernel API: %v", err))}, nil
	}
	s.conn = conn
	if st, ok := s.impl.(Starter); ok {
		return &pb.Result{Error: errToPB(st.Start(ctx, &remoteKernel{c: pb.NewKernelClient(conn)}))}, nil
	}
	return &pb.Result{}, nil
}

func (s *pluginServer) Stop(ctx context.Context, _ *pb.Empty) (*pb.Result, error) {
	var err error
	if st, ok := s.impl.(Stopper); ok {
		err = st.Stop(ctx)
	}
	if s.conn != nil {
		s.conn.Close()
	}
	return &pb.Result{Error: errToPB(err)}, nil
}

func (s *pluginServer) Ping(context.Context, *pb.Empty) (*pb.Empty, error) { return &pb.Empty{}, nil }

func (s *pluginServer) HandleCommand(ctx context.Context, c *pb.CommandMsg) (*pb.CommandResult, error) {
	h, ok := s.impl.(CommandHandler)
	if !ok {
		return &pb.CommandResult{Error: errToPB(Errorf(CodeInternal, "plugin handles no commands"))}, nil
	}
	evs, err := h.HandleCommand(ctx, commandFromPB(c))
	return &pb.CommandResult{Events: newEventsToPB(evs), Error: errToPB(err)}, nil
}

func (s *pluginServer) ApplyEvents(ctx context.Context, b *pb.EventBatch) (*pb.Result, error) {
	a, ok := s.impl.(EventApplier)
	if !ok {
		return &pb.Result{}, nil
	}
	return &pb.Result{Error: errToPB(a.ApplyEvents(ctx, eventsFromPB(b.Events)))}, nil
}

func (s *pluginServer) HandleQuery(ctx context.Context, q *pb.QueryMsg) (*pb.QueryResult, error) {
	h, ok := s.impl.(QueryHandler)
	if !ok {
		return &pb.QueryResult{Error: errToPB(Errorf(CodeInternal, "plugin answers no queries"))}, nil
	}
	ans, err := h.HandleQuery(ctx, Query{Name: q.Name, Company: q.Company, Actor: q.Actor, Payload: q.Payload})
	return &pb.QueryResult{Answer: ans, Error: errToPB(err)}, nil
}

// remoteKernel is the kernel API as a plugin process sees it.
type remoteKernel struct{ c pb.KernelClient }

var _ Kernel = (*remoteKernel)(nil)

func (k *remoteKernel) Append(ctx context.Context, evs []NewEvent) ([]Event, error) {
	r, err := k.c.Append(ctx, &pb.AppendRequest{Events: newEventsToPB(evs)})
	if err != nil {
		return nil, Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return eventsFromPB(r.Events), errFromPB(r.Error)
}

func (k *remoteKernel) ReadLog(ctx context.Context, from uint64, limit int) ([]Event, error) {
	r, err := k.c.ReadLog(ctx, &pb.ReadRequest{FromSeq: from, Limit: int32(limit)})
	if err != nil {
		return nil, Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return eventsFromPB(r.Events), errFromPB(r.Error)
}

func (k *remoteKernel) Publish(ctx context.Context, e NewEvent) error {
	r, err := k.c.Publish(ctx, newEventsToPB([]NewEvent{e})[0])
	if err != nil {
		return Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return errFromPB(r.Error)
}

func (k *remoteKernel) KVGet(ctx context.Context, key string) ([]byte, bool, error) {
	r, err := k.c.KVGet(ctx, &pb.KVKey{Key: key})
	if err != nil {
		return nil, false, Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return r.Value, r.Found, errFromPB(r.Error)
}

func (k *remoteKernel) KVPut(ctx context.Context, key string, value []byte) error {
	r, err := k.c.KVPut(ctx, &pb.KVPair{Key: key, Value: value})
	if err != nil {
		return Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return errFromPB(r.Error)
}

func (k *remoteKernel) KVDelete(ctx context.Context, key string) error {
	r, err := k.c.KVDelete(ctx, &pb.KVKey{Key: key})
	if err != nil {
		return Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return errFromPB(r.Error)
}

func (k *remoteKernel) EraseKey(ctx context.Context, company, name string) error {
	r, err := k.c.EraseKey(ctx, &pb.EraseKeyRequest{Company: company, Name: name})
	if err != nil {
		return Errorf(CodeUnavailable, "kernel: %v", err)
	}
	return errFromPB(r.Error)
}

// Remote is the kernel's handle on an out-of-process plugin (what
// go-plugin dispenses). Integrators do not use it.
type Remote struct {
	client pb.PluginClient
	broker *plugin.GRPCBroker
	server *grpc.Server
}

// Manifest asks the plugin for its manifest.
func (r *Remote) Manifest(ctx context.Context) (Manifest, error) {
	m, err := r.client.Manifest(ctx, &pb.Empty{})
	if err != nil {
		return Manifest{}, err
	}
	return manifestFromPB(m), nil
}

// Start serves api to the plugin over the broker and starts it.
func (r *Remote) Start(ctx context.Context, api Kernel) error {
	id := r.broker.NextId()
	go r.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server { // ends when the plugin's connection closes
		r.server = grpc.NewServer(opts...)
		pb.RegisterKernelServer(r.server, &kernelServer{api: api})
		return r.server
	})
	res, err := r.client.Start(ctx, &pb.StartRequest{KernelBrokerId: id})
	if err != nil {
		return err
	}
	return errFromPB(res.Error)
}

// Stop asks the plugin to stop.
func (r *Remote) Stop(ctx context.Context) error {
	res, err := r.client.Stop(ctx, &pb.Empty{})
	if err != nil {
		return err
	}
	return errFromPB(res.Error)
}

// Ping checks the plugin answers.
func (r *Remote) Ping(ctx context.Context) error {
	_, err := r.client.Ping(ctx, &pb.Empty{})
	return err
}

// HandleCommand routes a command to the plugin.
func (r *Remote) HandleCommand(ctx context.Context, c Command) ([]NewEvent, error) {
	res, err := r.client.HandleCommand(ctx, commandToPB(c))
	if err != nil {
		return nil, Errorf(CodeUnavailable, "plugin: %v", err)
	}
	if res.Error != nil {
		return nil, errFromPB(res.Error)
	}
	return newEventsFromPB(res.Events), nil
}

// HandleQuery routes a query to the plugin.
func (r *Remote) HandleQuery(ctx context.Context, q Query) (json.RawMessage, error) {
	res, err := r.client.HandleQuery(ctx, &pb.QueryMsg{Name: q.Name, Company: q.Company, Actor: q.Actor, Payload: q.Payload})
	if err != nil {
		return nil, Errorf(CodeUnavailable, "plugin: %v", err)
	}
	if res.Error != nil {
		return nil, errFromPB(res.Error)
	}
	return res.Answer, nil
}

// ApplyEvents delivers a batch of events.
func (r *Remote) ApplyEvents(ctx context.Context, evs []Event) error {
	res, err := r.client.ApplyEvents(ctx, &pb.EventBatch{Events: eventsToPB(evs)})
	if err != nil {
		return Errorf(CodeUnavailable, "plugin: %v", err)
	}
	return errFromPB(res.Error)
}

// kernelServer serves the kernel API of one activation, in the kernel.
type kernelServer struct {
	pb.UnimplementedKernelServer
	api Kernel
}

func (s *kernelServer) Append(ctx context.Context, r *pb.AppendRequest) (*pb.AppendResponse, error) {
	evs, err := s.api.Append(ctx, newEventsFromPB(r.Events))
	return &pb.AppendResponse{Events: eventsToPB(evs), Error: errToPB(err)}, nil
}

func (s *kernelServer) ReadLog(ctx context.Context, r *pb.ReadRequest) (*pb.ReadResponse, error) {
	evs, err := s.api.ReadLog(ctx, r.FromSeq, int(r.Limit))
	return &pb.ReadResponse{Events: eventsToPB(evs), Error: errToPB(err)}, nil
}

func (s *kernelServer) Publish(ctx context.Context, e *pb.NewEventMsg) (*pb.Result, error) {
	return &pb.Result{Error: errToPB(s.api.Publish(ctx, newEventsFromPB([]*pb.NewEventMsg{e})[0]))}, nil
}

func (s *kernelServer) KVGet(ctx context.Context, k *pb.KVKey) (*pb.KVValue, error) {
	v, ok, err := s.api.KVGet(ctx, k.Key)
	return &pb.KVValue{Value: v, Found: ok, Error: errToPB(err)}, nil
}

func (s *kernelServer) KVPut(ctx context.Context, p *pb.KVPair) (*pb.Result, error) {
	return &pb.Result{Error: errToPB(s.api.KVPut(ctx, p.Key, p.Value))}, nil
}

func (s *kernelServer) KVDelete(ctx context.Context, k *pb.KVKey) (*pb.Result, error) {
	return &pb.Result{Error: errToPB(s.api.KVDelete(ctx, k.Key))}, nil
}

func (s *kernelServer) EraseKey(ctx context.Context, r *pb.EraseKeyRequest) (*pb.Result, error) {
	return &pb.Result{Error: errToPB(s.api.EraseKey(ctx, r.Company, r.Name))}, nil
}

package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/parleyhq/parley/plugins/call/sfu/udpbatch"
)

// listenUDP opens the media socket(s): one on ip if it is set, otherwise one
// per address of every interface that is up (loopback and link-local left
// out), all on the same port. Each is wrapped for batched reads where the
// platform allows (see udpbatch).
func listenUDP(ip string, port int, ro udpbatch.Options) ([]net.PacketConn, error) {
	var addrs []netip.Addr
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", ip, err)
		}
		addrs = []netip.Addr{a}
	} else {
		var err error
		if addrs, err = interfaceAddrs(); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("no usable interface address to listen on")
		}
	}
	var conns []net.PacketConn
	fail := func(err error) ([]net.PacketConn, error) {
		for _, c := range conns {
			c.Close()
		}
		return nil, err
	}
	for _, a := range addrs {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(port))))
		if err != nil {
			return fail(fmt.Errorf("listen udp %s: %w", net.JoinHostPort(a.String(), strconv.Itoa(port)), err))
		}
		if port == 0 { // the first socket picks the port, the others follow it
			port = c.LocalAddr().(*net.UDPAddr).Port
		}
		bc, err := udpbatch.New(c, ro)
		if err != nil {
			c.Close()
			return fail(fmt.Errorf("media socket %s: %w", c.LocalAddr(), err))
		}
		conns = append(conns, bc)
	}
	return conns, nil
}

// maxDatagram is the largest datagram the SFU reads or forwards whole.
const maxDatagram = udpbatch.MaxDatagram

func interfaceAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr()
			if ip.IsLinkLocalUnicast() || ip.IsLoopback() || ip.IsMulticast() {
				continue
			}
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

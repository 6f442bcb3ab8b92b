package amqp

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// tcpProxy forwards TCP connections to a broker, so that a test can take a
// "node" away from its clients: DropAll closes the connections through it,
// Close also stops it listening, as a node that went down.
type tcpProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{} // client sides
	wg    sync.WaitGroup
}

// startProxy listens on a free local port and forwards to target
// (host:port) until the test ends.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// URL is brokerURL with its host:port replaced by the proxy's.
func (p *tcpProxy) URL(brokerURL string) string {
	u, err := url.Parse(brokerURL)
	require.NoError(p.t, err)
	u.Host = p.Addr()
	return u.String()
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			// One side ended: end both, as a broker that went away would.
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, client)
			p.mu.Unlock()
		}
		go pipe(upstream, client)
		go pipe(client, upstream)
	}
}

// Open returns the number of client connections open through the proxy.
func (p *tcpProxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// DropAll closes every connection through the proxy and returns how many
// there were; new connections are still accepted.
func (p *tcpProxy) DropAll() int {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// Close stops accepting and drops every connection: the node is gone.
func (p *tcpProxy) Close() {
	_ = p.ln.Close()
	p.DropAll()
	p.wg.Wait()
}

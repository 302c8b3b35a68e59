package integration_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// faultProxy is a TCP proxy on loopback in front of a server (the S3 test
// server) that can refuse connections or hang them. It sits on the network
// path, so the cleaner sees what it would see from a real endpoint in
// trouble: resets, and requests that get no answer.
type faultProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	mode  proxyMode
	wake  chan struct{} // closed and replaced when the mode changes
	conns map[net.Conn]bool
}

type proxyMode int

const (
	proxyPass   proxyMode = iota
	proxyRefuse           // new and open connections are reset
	proxyHang             // bytes stop flowing both ways; connections stay open
)

func (m proxyMode) String() string {
	return [...]string{"pass", "refuse", "hang"}[m]
}

func startFaultProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, wake: make(chan struct{}), conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.set(proxyRefuse)
	})
	return p
}

// Addr is the proxy's host:port.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// set switches the mode. Refusing resets every open connection.
func (p *faultProxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.wake)
	p.wake = make(chan struct{})
	if m == proxyRefuse {
		for c := range p.conns {
			reset(c)
		}
	}
}

func (p *faultProxy) state() (proxyMode, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.wake
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // close with RST
	}
	c.Close()
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *faultProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.mode == proxyRefuse {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *faultProxy) handle(client net.Conn) {
	if !p.track(client, true) {
		reset(client)
		return
	}
	defer p.track(client, false)
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		reset(client)
		return
	}
	if !p.track(server, true) {
		reset(client)
		reset(server)
		return
	}
	defer p.track(server, false)
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
}

// pipe copies from src to dst, holding each chunk while the proxy hangs.
func (p *faultProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				mode, wake := p.state()
				if mode == proxyRefuse {
					return
				}
				if mode == proxyPass {
					break
				}
				<-wake
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// TestFaultProxy checks the proxy itself: it passes bytes, resets
// connections while refusing, and holds them while hanging.
func TestFaultProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := startFaultProxy(t, echo.Addr().String())
	roundTrip := func(timeout time.Duration) error {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return errors.New("wrong echo " + string(buf))
		}
		return nil
	}
	if err := roundTrip(5 * time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	p.set(proxyRefuse)
	if err := roundTrip(5 * time.Second); err == nil {
		t.Fatal("refuse: the round trip worked")
	}
	p.set(proxyHang)
	var ne net.Error
	if err := roundTrip(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("hang: %v, want a timeout", err)
	}
	// A request sent while hanging is answered once the hang ends.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("late"))
	time.AfterFunc(200*time.Millisecond, func() { p.set(proxyPass) })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "late" {
		t.Fatalf("after the hang: %q, %v", buf, err)
	}
}

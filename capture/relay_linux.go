//go:build linux

package capture

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// relay proxies connection pairs whose two sides are plain sockets (TCP or
// Unix; no TLS in the tap) in event loops: a few goroutines, each waiting
// on an epoll set for any socket of its pairs to be ready, then reading and
// writing it with non-blocking system calls.
//
// Why not a goroutine per direction (splice): there, every message costs a
// goroutine wake-up on each side: the runtime's poller readies the
// goroutine, a sleeping thread is woken to run it, and it parks again; on a
// 2-core VM that was half of the tap's CPU per message. A loop pays one
// epoll_wait for all the sockets ready at once, the way nginx does, and its
// reads and writes enter the kernel directly (raw system calls on
// non-blocking sockets, which never block, so the runtime need not know).
// An idle pair holds no goroutine, no stack and no buffer.
//
// The proxied bytes keep the same guarantees as splice's: each chunk is
// written on before capture sees it; a write the peer's socket cannot take
// whole is kept (the one chunk) and reading that side stops until it is
// written, the backpressure a blocking write gives; a read side's end is
// passed on as a half-close; the first error ends both sides.
type relay struct {
	loops []*relayLoop
	next  atomic.Uint32
}

// newRelay returns a relay of n loops whose goroutines wg counts. A loop's
// goroutine runs only while the loop has pairs.
func newRelay(n int, wg *sync.WaitGroup) *relay {
	if n < 1 {
		n = 1
	}
	// A loop waits in epoll_wait, a system call that keeps its P (the
	// runtime's right to run Go code) until the monitor thread takes the P
	// away, which it does within 20 µs when no other P is idle, and then
	// polls every 20 µs itself. With a P to spare for each, loops wait
	// there; otherwise (GOMAXPROCS 1, or as many loops as Ps) they park on
	// the runtime's poller instead, which watches their epoll sets like
	// any socket: a goroutine wake-up per batch of ready connections.
	park := runtime.GOMAXPROCS(0) <= n
	r := &relay{loops: make([]*relayLoop, n)}
	for i := range r.loops {
		r.loops[i] = &relayLoop{wg: wg, epfd: -1, evfd: -1, park: park}
	}
	return r
}

// take moves the pair a, b into a loop, as splice would proxy it (see
// splice for aPending, bPending, teeA, teeB and end), and returns a
// function that stops it (end is called with net.ErrClosed). It returns
// ok false, leaving a and b as they were, when the pair cannot go into a
// loop: r is nil, either side is not a plain socket, or the system is out
// of descriptors. Once it returns true, a and b are closed: the loop owns
// duplicates of their descriptors.
func (r *relay) take(a, b net.Conn, aPending, bPending []byte, teeA, teeB *tee, end func(aFirst bool, err error)) (stop func(), ok bool) {
	if r == nil {
		return nil, false
	}
	fa, ok := dupSocket(a)
	if !ok {
		return nil, false
	}
	fb, ok := dupSocket(b)
	if !ok {
		unix.Close(fa)
		return nil, false
	}
	l := r.loops[int(r.next.Add(1))%len(r.loops)]
	p := &relayPair{
		loop:    l,
		fd:      [2]int{fromClient: fa, fromServer: fb},
		tee:     [2]*tee{fromClient: teeA, fromServer: teeB},
		pending: [2][]byte{fromClient: aPending, fromServer: bPending},
		end:     end,
	}
	if err := l.submit(p); err != nil {
		unix.Close(fa)
		unix.Close(fb)
		return nil, false
	}
	// The duplicates keep the sockets open; closing the originals takes
	// them out of the runtime's poller, which would otherwise wake for
	// every byte the loop handles.
	a.Close()
	b.Close()
	return func() { l.stop(p) }, true
}

// dupSocket returns a non-blocking, close-on-exec duplicate of c's
// descriptor when c is a plain TCP or Unix socket.
func dupSocket(c net.Conn) (int, bool) {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return -1, false
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// relayLoop is one event loop: an epoll set, the pairs registered in it and
// the goroutine that serves them. The goroutine, the epoll set and the
// wake-up eventfd exist only while the loop has pairs: the first pair
// starts them and the last one's end stops them, so a loop never outlives
// its pairs, and a tap whose connections have all ended holds none.
type relayLoop struct {
	wg   *sync.WaitGroup
	park bool // wait on the runtime's poller, not in epoll_wait (see newRelay)

	mu      sync.Mutex
	running bool
	adds    []*relayPair // to register at the next wake-up
	stops   []*relayPair // to stop at the next wake-up
	// The loop's descriptors: opened under mu before its goroutine starts
	// and closed under mu as it ends; the goroutine reads them freely.
	epfd   int
	evfd   int
	epoll  *os.File        // with park: the epoll set, in the runtime's poller
	epollc syscall.RawConn // with park: epoll's

	// Owned by the loop's goroutine.
	pairs  map[int]*relayPair // by either side's descriptor
	buf    []byte             // the read buffer; the tee copies what capture needs, then it is reused
	events []unix.EpollEvent
}

// relayEvents is how many ready sockets one epoll_wait returns at most.
const relayEvents = 128

// relayYieldEvery is how often a loop yields to the scheduler (see run):
// half the runtime's 10 ms time slice. Each yield wakes another thread to
// look for work, which costs this VM more than the yield itself: at 2 ms a
// loop serving 2,000 msg/s yielded 500 times a second, and the tap spent
// 12-20% more CPU per message than at 5 ms (docs/benchmarks.md).
const relayYieldEvery = int64(5 * time.Millisecond)

// submit hands p to the loop, starting the loop if it was stopped.
func (l *relayLoop) submit(p *relayPair) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		if err := l.open(); err != nil {
			return err
		}
		l.running = true
		l.adds = append(l.adds, p)
		l.wg.Add(1)
		go l.run()
		return nil
	}
	if err := l.wake(); err != nil {
		return err
	}
	l.adds = append(l.adds, p)
	return nil
}

// stop asks the loop to end p with net.ErrClosed; a pair already ended is
// left alone.
func (l *relayLoop) stop(p *relayPair) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return // every pair the loop had has ended
	}
	l.stops = append(l.stops, p)
	l.wake()
}

// open creates the epoll set and the eventfd that wakes it. l.mu is held.
func (l *relayLoop) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	if l.park {
		// os.NewFile puts a non-blocking descriptor in the runtime's
		// poller; it owns (and closes) epfd from here on.
		if err := unix.SetNonblock(epfd, true); err != nil {
			unix.Close(evfd)
			unix.Close(epfd)
			return os.NewSyscallError("fcntl", err)
		}
		l.epoll = os.NewFile(uintptr(epfd), "epoll")
		rc, err := l.epoll.SyscallConn()
		if err != nil {
			l.epoll.Close()
			unix.Close(evfd)
			return err
		}
		l.epollc = rc
	}
	l.epfd, l.evfd = epfd, evfd
	if l.buf == nil {
		l.buf = make([]byte, pumpBufferBytes)
		l.events = make([]unix.EpollEvent, relayEvents)
		l.pairs = make(map[int]*relayPair)
	}
	return nil
}

// wake makes the loop's epoll_wait return. l.mu is held.
func (l *relayLoop) wake() error {
	one := uint64(1)
	_, err := unix.Write(l.evfd, (*[8]byte)(unsafe.Pointer(&one))[:])
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		// EAGAIN: the counter is full, so a wake-up is pending anyway.
		return os.NewSyscallError("write eventfd", err)
	}
	return nil
}

// run serves the loop's pairs until it has none left.
func (l *relayLoop) run() {
	defer l.wg.Done()
	commands := true // the first pair is waiting
	yielded := nanotime()
	for {
		if commands {
			if !l.takeCommands() {
				return
			}
			if len(l.pairs) == 0 {
				continue // the commands ended them: stop, unless a pair is waiting
			}
			commands = false
		}
		n, err := l.wait()
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Only a broken epoll set fails here; end every pair rather
			// than spin.
			l.endAll(os.NewSyscallError("epoll_wait", err))
			commands = true
			continue
		}
		for i := range n {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.evfd {
				var b [8]byte
				unix.Read(l.evfd, b[:])
				commands = true
				continue
			}
			if p := l.pairs[fd]; p != nil {
				p.ready(fd, ev.Events)
			}
		}
		if len(l.pairs) == 0 {
			commands = true // to stop the loop unless a pair is waiting
		}
		if now := nanotime(); now-yielded > relayYieldEvery {
			// A goroutine that never passes through the scheduler looks
			// stuck to the runtime's monitor, which then takes its P at
			// every system call and polls every 20 µs from then on.
			runtime.Gosched()
			yielded = now
		}
	}
}

// wait waits for ready descriptors and returns how many it put in
// l.events.
func (l *relayLoop) wait() (int, error) {
	if l.epollc == nil {
		return unix.EpollWait(l.epfd, l.events, -1)
	}
	var n int
	var errno syscall.Errno
	err := l.epollc.Read(func(fd uintptr) bool {
		// epoll_pwait with a zero timeout and no signal mask: it never
		// blocks, so it enters the kernel directly.
		r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		n, errno = int(r), e
		return n > 0 || (errno != 0 && errno != unix.EAGAIN) // else park until epoll is readable
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// takeCommands registers the pairs submitted and stops those asked to stop;
// with no pairs left it closes the loop and returns false.
func (l *relayLoop) takeCommands() bool {
	l.mu.Lock()
	adds, stops := l.adds, l.stops
	l.adds, l.stops = nil, nil
	if len(adds) == 0 && len(l.pairs) == 0 {
		l.running = false
		unix.Close(l.evfd)
		if l.epoll != nil {
			l.epoll.Close()
			l.epoll, l.epollc = nil, nil
		} else {
			unix.Close(l.epfd)
		}
		l.evfd, l.epfd = -1, -1
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	for _, p := range adds {
		p.register()
	}
	for _, p := range stops {
		if !p.done {
			p.fail(fromClient, net.ErrClosed)
		}
	}
	return true
}

// endAll ends every pair with err.
func (l *relayLoop) endAll(err error) {
	for _, p := range l.pairs {
		if !p.done {
			p.fail(fromClient, err)
		}
	}
}

// relayPair is one proxied pair in a loop. Its two sides, a (the client)
// and b (the upstream), are named for the direction that reads them:
// direction d carries what is read from side d to side d.other(), so
// fromClient reads a and fromServer reads b. Only the loop's goroutine
// touches it after submit.
type relayPair struct {
	loop     *relayLoop
	fd       [2]int
	tee      [2]*tee   // tee[d] sees what is read from side d
	pending  [2][]byte // read from side d before the loop took the pair
	out      [2]chunk  // out[d]: a chunk from side d not yet all written to side d.other()
	ended    [2]bool   // side d's reads ended and the end was passed on
	mask     [2]uint32 // the events registered for side d; 0: not in the set (see update)
	first    direction // the side that ended first, once firstSet
	firstSet bool
	end      func(aFirst bool, err error)
	done     bool
}

// chunk is bytes being written on.
type chunk struct {
	b   []byte
	off int       // written so far
	at  time.Time // when it was read (for the tee; zero without mark)
	bp  *[]byte   // the pooled buffer b is in, if any
}

// reading reports whether the loop reads side d: until it ends, and while
// nothing from it waits to be written.
func (p *relayPair) reading(d direction) bool { return !p.ended[d] && p.out[d].b == nil }

// register adds p's sockets to the epoll set and forwards what was read
// before.
func (p *relayPair) register() {
	l := p.loop
	for _, d := range bothDirections {
		fd := p.fd[d]
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			p.fail(d, os.NewSyscallError("epoll_ctl", err))
			return
		}
		p.mask[d] = unix.EPOLLIN
		l.pairs[fd] = p
	}
	for _, d := range bothDirections {
		b := p.pending[d]
		p.pending[d] = nil
		if len(b) > 0 && !p.done {
			p.forward(d, b, nil)
		}
	}
	if !p.done {
		p.update()
	}
}

// ready handles the events epoll reported for descriptor fd.
func (p *relayPair) ready(fd int, events uint32) {
	d := fromClient // the side fd is
	if fd == p.fd[fromServer] {
		d = fromServer
	}
	handled := false
	if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && p.out[d.other()].b != nil {
		p.flush(d.other())
		handled = true
	}
	if !p.done && events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 && p.reading(d) {
		p.read(d)
		handled = true
	}
	if !p.done && !handled && events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && p.mask[d] != 0 {
		// A socket the loop waits on failed or hung up, and neither a
		// read nor a write would find out how: its peer is gone. (A
		// socket the loop has nothing to do with is out of the set; see
		// update.)
		err := error(syscall.ECONNRESET)
		if e, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && e != 0 {
			err = syscall.Errno(e)
		}
		p.fail(d, os.NewSyscallError("socket", err))
	}
	if !p.done {
		p.update()
	}
}

// read reads side d once and forwards what it got.
func (p *relayPair) read(d direction) {
	buf := p.loop.buf
	n, errno := rawRead(p.fd[d], buf)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		// Not ready after all; epoll reports it again when it is.
	case errno != 0:
		p.fail(d, os.NewSyscallError("read", errno))
	case n == 0:
		p.ended[d] = true
		p.setFirst(d)
		p.passEnd(d)
	default:
		p.forward(d, buf[:n], nil)
	}
}

// forward writes b, read from side d, to side d.other(), then lets the tee
// see it; what the socket does not take is kept in out[d] until it does, and
// the tee sees it then. b is in the loop's buffer, or owned by the pair; bp
// is the pooled buffer it is in, if any.
//
// The tee is marked only for a chunk kept: one loop forwards both
// directions of a pair, so between a chunk's read and its tee seeing it
// nothing of the other direction can be forwarded unless the chunk waits.
func (p *relayPair) forward(d direction, b []byte, bp *[]byte) {
	t := p.tee[d]
	var at time.Time
	if t != nil && t.mark != nil {
		at = time.Now()
	}
	n, errno := rawSend(p.fd[d.other()], b)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		n = 0
	case errno != 0:
		p.fail(d.other(), os.NewSyscallError("write", errno)) // side d.other() went away
		return
	}
	if n < len(b) {
		if t != nil && t.mark != nil {
			t.mark(at)
		}
		if &b[0] == &p.loop.buf[0] {
			// The loop's buffer is read into again at once: keep a copy.
			bp = pumpBuffers.Get().(*[]byte)
			b = (*bp)[:copy(*bp, b)]
		}
		p.out[d] = chunk{b: b, off: n, at: at, bp: bp}
		return
	}
	if t != nil {
		t.see(b, at)
	}
}

// flush writes on what is left of out[d], the chunk read from side d.
func (p *relayPair) flush(d direction) {
	c := &p.out[d]
	n, errno := rawSend(p.fd[d.other()], c.b[c.off:])
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return
	case errno != 0:
		p.fail(d.other(), os.NewSyscallError("write", errno)) // side d.other() went away
		return
	}
	c.off += n
	if c.off < len(c.b) {
		return
	}
	if t := p.tee[d]; t != nil {
		t.see(c.b, c.at)
	}
	if c.bp != nil {
		pumpBuffers.Put(c.bp)
	}
	*c = chunk{}
}

// passEnd half-closes side d.other() after side d's reads ended, so that
// its peer reads the end; once both have ended the pair is done.
func (p *relayPair) passEnd(d direction) {
	if err := unix.Shutdown(p.fd[d.other()], unix.SHUT_WR); err != nil && !errors.Is(err, unix.ENOTCONN) {
		p.fail(d.other(), os.NewSyscallError("shutdown", err))
		return
	}
	if p.ended[d.other()] {
		p.close()
		p.end(p.first == fromClient, nil)
	}
}

// update registers the events p now waits for: readable on a side it
// reads, writable on a side it has bytes for.
func (p *relayPair) update() {
	for _, d := range bothDirections {
		fd := p.fd[d]
		var want uint32
		if p.reading(d) {
			want |= unix.EPOLLIN
		}
		if p.out[d.other()].b != nil {
			want |= unix.EPOLLOUT
		}
		if want == p.mask[d] {
			continue
		}
		ev := unix.EpollEvent{Events: want, Fd: int32(fd)}
		op := unix.EPOLL_CTL_MOD
		switch {
		case want == 0:
			// Out of the set: a hang-up (EPOLLHUP is reported whatever
			// the mask) would otherwise be reported at every wait.
			op = unix.EPOLL_CTL_DEL
		case p.mask[d] == 0:
			op = unix.EPOLL_CTL_ADD
		}
		if err := unix.EpollCtl(p.loop.epfd, op, fd, &ev); err != nil {
			p.fail(d, os.NewSyscallError("epoll_ctl", err))
			return
		}
		p.mask[d] = want
	}
}

// setFirst records that side d ended, unless the other ended before.
func (p *relayPair) setFirst(d direction) {
	if !p.firstSet {
		p.first, p.firstSet = d, true
	}
}

// fail ends p after side d failed with err.
func (p *relayPair) fail(d direction, err error) {
	if p.done {
		return
	}
	p.setFirst(d)
	p.close()
	p.end(p.first == fromClient, err)
}

// close takes p's sockets out of the loop and closes them; the caller then
// calls end.
func (p *relayPair) close() {
	p.done = true
	l := p.loop
	for _, d := range bothDirections {
		fd := p.fd[d]
		if l.pairs[fd] == p {
			// Explicitly: the descriptor may be a duplicate of one still
			// open, and epoll forgets a socket only when every
			// descriptor of it is closed.
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			delete(l.pairs, fd)
		}
		unix.Close(fd)
		if c := &p.out[d]; c.bp != nil {
			pumpBuffers.Put(c.bp)
		}
		p.out[d] = chunk{}
	}
}

// rawRead reads fd into b, and rawSend sends b on fd without SIGPIPE,
// entering the kernel directly: the sockets are non-blocking, so the calls
// never block and the runtime need not hand the thread's P over. b is not
// empty.
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

func rawSend(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

//! Socket deadlines without may's per-socket io timers.
//!
//! may 0.3.51 enforces `set_read_timeout`/`set_write_timeout` with a timer
//! entry per wait, kept in the timer list of the socket's selector thread
//! and shared with the socket through a `RefCell` that several threads
//! touch. Under load that bookkeeping breaks — may panics inside its timer
//! list, even with one worker, and its unsynchronised cross-thread paths can
//! corrupt the heap (docs/performance.md, "A crash under load", has the
//! stress program and what it showed). So buyer calls and server reads arm
//! a [`Watch`] here instead: one reaper thread keeps every armed deadline,
//! and when one passes it shuts the socket down (`shutdown(2)`: both ways,
//! or only reading for [`Watch::reads`]). The waiting read or write then
//! ends through may's ordinary readiness path (EOF or EPIPE), and the
//! owner, seeing [`Watch::fired`], reports a time-out.
//!
//! The socket must outlive every shutdown aimed at it, or a reused fd could
//! be shut down: dropping a `Watch` disarms it first and waits out a shutdown
//! already under way, so a `Watch` declared before its socket (dropped
//! first) is always safe.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::sync::Mutex;

/// The reaper sleeps at most this long, so a lost wake-up costs little.
const REAPER_NAP_MAX: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The reaper is shutting the socket down right now.
    Firing,
    /// The deadline passed and the socket was shut down; final.
    Fired,
}

struct SlotState {
    phase: Phase,
    /// The deadline armed now, if any.
    armed: Option<Instant>,
    /// The earliest entry of this slot in the reaper's heap. A later re-arm
    /// pushes nothing: when that entry pops, the reaper re-queues the slot
    /// at its armed deadline. So each socket has one or two entries queued,
    /// however often it is re-armed, and the heap is bounded by sockets.
    queued: Option<Instant>,
}

/// One socket's deadline state, shared with the reaper.
struct Slot {
    fd: RawFd,
    /// What a passed deadline shuts down.
    how: Shutdown,
    state: Mutex<SlotState>,
}

/// A queued check of one slot; it fires only if the slot's armed deadline
/// has passed when it pops.
struct Entry {
    at: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

struct Reaper {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    thread: Thread,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let handle = std::thread::Builder::new()
            .name("leadx-deadline".into())
            .spawn(run_reaper)
            .expect("spawning the deadline reaper thread failed");
        Reaper {
            heap: Mutex::new(BinaryHeap::new()),
            thread: handle.thread().clone(),
        }
    })
}

/// Queues a check of `slot` at `at`, waking the reaper if it is the earliest.
fn enqueue(at: Instant, slot: Arc<Slot>) {
    let r = reaper();
    let earliest = {
        let mut heap = r.heap.lock();
        let earliest = heap.peek().is_none_or(|Reverse(e)| at < e.at);
        heap.push(Reverse(Entry { at, slot }));
        earliest
    };
    if earliest {
        r.thread.unpark();
    }
}

fn run_reaper() {
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let nap = {
            let mut heap = reaper().heap.lock();
            while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = heap.pop() {
                    due.push(e);
                }
            }
            heap.peek().map_or(REAPER_NAP_MAX, |Reverse(e)| {
                (e.at - now).min(REAPER_NAP_MAX)
            })
        };
        for e in due {
            check(e, now);
        }
        std::thread::park_timeout(nap);
    }
}

/// A popped entry: shut the socket down if its armed deadline has passed,
/// re-queue it if it was re-armed later, else forget it.
fn check(e: Entry, now: Instant) {
    let requeue = {
        let mut st = e.slot.state.lock();
        if st.queued == Some(e.at) {
            st.queued = None;
        }
        match (st.phase, st.armed) {
            (Phase::Open, Some(at)) if at <= now => {
                st.phase = Phase::Firing;
                None
            }
            (Phase::Open, Some(at)) if st.queued.is_none_or(|q| at < q) => {
                st.queued = Some(at);
                Some(at)
            }
            _ => return,
        }
    };
    match requeue {
        Some(at) => enqueue(at, e.slot),
        None => {
            // The owner waits while the phase is Firing, so the fd is open.
            let _ = socket2::SockRef::from(&BorrowedSocket(e.slot.fd)).shutdown(e.slot.how);
            e.slot.state.lock().phase = Phase::Fired;
        }
    }
}

/// Lets socket2 address a raw fd for one call; it never closes it.
struct BorrowedSocket(RawFd);

impl std::os::fd::AsFd for BorrowedSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: `check` only shuts a socket down while its owner keeps it
        // open (see the module doc); the borrow does not outlive the call.
        #[allow(unsafe_code)]
        unsafe {
            std::os::fd::BorrowedFd::borrow_raw(self.0)
        }
    }
}

/// The deadline of one socket. Declare it before the socket it watches so
/// it is dropped (disarmed) first.
pub struct Watch {
    slot: Arc<Slot>,
}

impl Watch {
    /// A watch whose deadline shuts the socket down both ways.
    pub fn new(fd: RawFd) -> Watch {
        Watch::with(fd, Shutdown::Both)
    }

    /// A watch whose deadline shuts down only reading: a pending read ends
    /// (EOF) and an answer can still be written (the server's 408).
    pub fn reads(fd: RawFd) -> Watch {
        Watch::with(fd, Shutdown::Read)
    }

    fn with(fd: RawFd, how: Shutdown) -> Watch {
        let state = SlotState {
            phase: Phase::Open,
            armed: None,
            queued: None,
        };
        Watch {
            slot: Arc::new(Slot {
                fd,
                how,
                state: Mutex::new(state),
            }),
        }
    }

    /// Arms `at`, replacing any deadline armed before. A watch that fired
    /// stays fired: its socket is shut down for good. True when this pushed
    /// an entry on the reaper's heap (a re-arm to a later time does not).
    pub fn arm(&self, at: Instant) -> bool {
        let push = {
            let mut st = self.slot.state.lock();
            if st.phase != Phase::Open {
                return false;
            }
            st.armed = Some(at);
            let push = st.queued.is_none_or(|q| at < q);
            if push {
                st.queued = Some(at);
            }
            push
        };
        if push {
            enqueue(at, self.slot.clone());
        }
        push
    }

    /// Disarms; true when the deadline had already fired (the socket is shut
    /// down). Waits out a shutdown under way, which takes one syscall.
    pub fn disarm(&self) -> bool {
        loop {
            {
                let mut st = self.slot.state.lock();
                match st.phase {
                    Phase::Fired => return true,
                    Phase::Open => {
                        st.armed = None;
                        return false;
                    }
                    Phase::Firing => {}
                }
            }
            std::hint::spin_loop();
        }
    }

    /// True once the deadline fired (the socket is or is being shut down).
    pub fn fired(&self) -> bool {
        self.slot.state.lock().phase != Phase::Open
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_passed_deadline_shuts_the_socket_and_a_disarmed_one_does_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        let b = std::net::TcpStream::connect(addr).unwrap();
        let (_a_peer, _) = l.accept().unwrap();
        let (_b_peer, _) = l.accept().unwrap();
        // Bounds the test if the reaper never fires.
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let wa = Watch::new(a.as_raw_fd());
        let wb = Watch::new(b.as_raw_fd());
        assert!(wa.arm(Instant::now() + Duration::from_millis(30)));
        assert!(wb.arm(Instant::now() + Duration::from_millis(30)));
        assert!(!wb.disarm());
        let mut buf = [0u8; 8];
        // The peer never writes: only the reaper's shutdown ends this read.
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert!(wa.fired() && wa.disarm());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!wb.fired());
        b.set_nonblocking(true).unwrap();
        let e = (&b).read(&mut buf).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "b must still be open"
        );
    }

    /// Re-arming to later deadlines (a keep-alive connection, call after
    /// call) queues nothing new: the heap is bounded by sockets, not by
    /// traffic. An earlier deadline does queue, and still fires on time.
    #[test]
    fn later_re_arms_queue_nothing_and_an_earlier_one_fires() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let w = Watch::new(a.as_raw_fd());
        let base = Instant::now() + Duration::from_secs(60);
        assert!(w.arm(base));
        let pushed = (1..1000u64)
            .filter(|i| w.arm(base + Duration::from_millis(*i)))
            .count();
        assert_eq!(pushed, 0);
        assert!(w.arm(Instant::now() + Duration::from_millis(20)));
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert!(w.disarm());
    }

    /// A deadline moved later is still enforced: the earlier entry pops,
    /// the reaper re-queues the slot at the new deadline, and fires then.
    #[test]
    fn a_deadline_moved_later_fires_at_the_later_time() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let w = Watch::new(a.as_raw_fd());
        assert!(w.arm(Instant::now() + Duration::from_millis(20)));
        assert!(!w.arm(Instant::now() + Duration::from_millis(1_500)));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!w.fired(), "fired at the old deadline");
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert!(w.fired());
    }
}

//! The detector thread on a simulated clock: windows follow monotonic time
//! through wall-clock steps, and alerts carry the wall clock as it is when
//! they are written.
use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;

use super::*;
use crate::{
    alert::AgentInfo,
    clock::{TimeBase, fake::FakeClocks},
    daemon::process_names::tests::named_thread,
    event::{LossEvent, LossOrigin},
    identity::HostRoots,
    state::tests::{CONFIG, shared_on},
};

const HOUR: Duration = Duration::from_secs(3600);
/// The configuration's dedup window (the default).
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output {
    fn lines(&self) -> Vec<Value> {
        let out = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&out)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// The detector thread, fed by the returned sender, on clocks the test
/// steps.
struct Pipeline {
    clocks: Arc<FakeClocks>,
    time: Arc<TimeBase>,
    shared: Arc<Shared>,
    out: Output,
    events: Option<mpsc::Sender<Vec<Event>>>,
    thread: Option<thread::JoinHandle<Result<(), DaemonError>>>,
}

impl Pipeline {
    fn start(wall: SystemTime) -> Pipeline {
        let clocks = Arc::new(FakeClocks::new(Duration::from_secs(100), wall));
        let time = Arc::new(TimeBase::new(clocks.clone()));
        let shared = Arc::new(shared_on(CONFIG, &[("pw_connect4", true)], time.clone()));
        let out = Output::default();
        let agent = AgentInfo {
            host_name: "h".into(),
            version: "0".into(),
        };
        let writer = AlertWriter::to_writer(Box::new(out.clone()), agent);
        let (events, received) = mpsc::channel(8);
        let thread = {
            let shared = shared.clone();
            // The host's /proc names the test's own thread; no container
            // state is there to find.
            let identity = Resolver::new(HostRoots {
                proc: "/proc".into(),
                run: "/nonexistent/run".into(),
                cgroup: "/nonexistent/cgroup".into(),
            });
            thread::spawn(move || run(received, &shared, writer, identity))
        };
        Pipeline {
            clocks,
            time,
            shared,
            out,
            events: Some(events),
            thread: Some(thread),
        }
    }

    fn send(&self, batch: Vec<Event>) {
        if let Some(events) = &self.events {
            events.blocking_send(batch).unwrap();
        }
    }

    /// A loss report stamped now, as the source stamps it.
    fn loss(&self) {
        self.send(vec![Event::Loss(LossEvent {
            timestamp: self.time.now(),
            origin: LossOrigin::KernelDnsPacket,
            count: 1,
        })]);
    }

    /// The once-a-second empty batch.
    fn tick(&self) {
        self.send(Vec::new());
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Pipeline) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn folded(&self) -> u64 {
        self.shared.alert_stream.folded.load(Ordering::Relaxed)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.events = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wall(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn timestamp(line: &Value, field: &str) -> String {
    let mut value = line;
    for key in field.split('.') {
        value = &value[key];
    }
    value.as_str().unwrap_or_default().to_owned()
}

fn rfc3339(at: SystemTime) -> String {
    crate::alert::ecs::format_timestamp(at)
}

#[test]
fn a_wall_clock_step_back_neither_holds_a_fold_window_open_nor_reaches_the_alert_late() {
    const T0: u64 = 1_800_000_000;
    let pipeline = Pipeline::start(wall(T0));
    pipeline.loss();
    pipeline.wait_until("the first line", |p| p.out.lines().len() == 1);
    assert_eq!(
        timestamp(&pipeline.out.lines()[0], "@timestamp"),
        rfc3339(wall(T0))
    );

    // One second later NTP steps the wall clock back an hour; a repeat
    // arrives and is folded.
    pipeline.clocks.advance(Duration::from_secs(1));
    pipeline.clocks.step_wall(wall(T0 + 1) - HOUR);
    pipeline.loss();
    pipeline.wait_until("the repeat to be folded", |p| p.folded() == 1);

    // The window's minute passes on the monotonic clock: the next tick
    // closes it, though the wall clock says an hour less has passed.
    pipeline.clocks.advance(WINDOW);
    pipeline.tick();
    pipeline.wait_until("the summary line", |p| p.out.lines().len() == 2);
    let summary = &pipeline.out.lines()[1];
    assert_eq!(summary["pinwatch"]["repeats"]["count"], 1);
    // The repeat happened one second after the first alert: on the wall
    // clock as it now stands, an hour before that second.
    let repeat = rfc3339(wall(T0 + 1) - HOUR);
    assert_eq!(timestamp(summary, "@timestamp"), repeat);
    assert_eq!(timestamp(summary, "event.end"), repeat);
}

#[test]
fn a_wall_clock_step_forward_does_not_close_a_fold_window_early() {
    const T0: u64 = 1_800_000_000;
    let pipeline = Pipeline::start(wall(T0));
    pipeline.loss();
    pipeline.wait_until("the first line", |p| p.out.lines().len() == 1);

    // The wall clock jumps a day ahead (a resume after a long suspend, or
    // an NTP step): a second of monotonic time passed, the window is open.
    pipeline.clocks.advance(Duration::from_secs(1));
    pipeline.clocks.step_wall(wall(T0 + 1) + 24 * HOUR);
    pipeline.tick();
    pipeline.loss();
    pipeline.wait_until("the repeat to be folded", |p| p.folded() == 1);
    assert_eq!(pipeline.out.lines().len(), 1, "no summary yet");

    let out = pipeline.out.clone();
    drop(pipeline);
    // Shutdown flushes the window; its line carries the new wall clock.
    let lines = out.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        timestamp(&lines[1], "@timestamp"),
        rfc3339(wall(T0 + 1) + 24 * HOUR)
    );
}

#[test]
fn a_connect_from_a_thread_is_named_by_its_process_on_this_thread() {
    let (tid, alive) = named_thread("pw-pool-3");
    let pipeline = Pipeline::start(wall(1_800_000_000));
    pipeline.send(vec![Event::Connect(crate::event::ConnectEvent {
        timestamp: pipeline.time.now(),
        process: crate::event::Process {
            pid: std::process::id(),
            tid,
            uid: 0,
            gid: 0,
            name: "pw-pool-3".into(),
            cgroup_id: 0,
        },
        destination: "203.0.113.5:26257".parse().unwrap(),
        action: crate::event::ConnectAction::Allowed,
        socket_cookie: 0,
    })]);
    pipeline.wait_until("the alert", |p| p.out.lines().len() == 1);
    let own = std::fs::read_to_string("/proc/self/comm").unwrap();
    let alert = &pipeline.out.lines()[0];
    assert_eq!(alert["event"]["action"], "unexpected-db-peer");
    assert_eq!(alert["process"]["name"], own.trim_end());
    drop(alive);
}

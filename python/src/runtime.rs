//! Where the numbers run: the thread pool (`batchgp.set_num_threads`), backends made once per
//! process, and the GIL-free, interruptible fit.
//!
//! A fit runs as a job on the rayon pool while the calling (Python) thread waits for it without
//! the GIL. That thread wakes at least every [`POLL`] to take the GIL briefly: it checks for
//! signals (Ctrl-C raises KeyboardInterrupt there, and only there: Python runs signal handlers
//! on the main thread) and draws progress. On a signal it raises the fit's stop flag, which the
//! core reads through `FitObserver::stop` after every batched evaluation.

use batchgp::backend::{self, Backend, BackendChoice};
use batchgp::{Error, FitObserver, FitProgress, Result};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How often the waiting thread looks for signals.
const POLL: Duration = Duration::from_millis(50);
/// How often progress is drawn at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The pool set by `set_num_threads`; rayon's global pool until then.
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidOption { name: "n".into(), reason: "the number of threads must be >= 1".into() });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("batchgp-{i}"))
        .build()
        .map_err(|e| Error::InvalidOption { name: "n".into(), reason: e.to_string() })?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(pool));
    Ok(())
}

fn pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Threads the numerical work runs on.
pub fn num_threads() -> usize {
    match pool() {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// Runs `f` on the pool (no GIL is held by the caller).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// A rayon scope whose body runs on the calling thread and whose spawned jobs run on the pool.
fn in_place_scope<'scope, R>(op: impl FnOnce(&rayon::Scope<'scope>) -> R) -> R {
    match pool() {
        Some(p) => p.in_place_scope(op),
        None => rayon::in_place_scope(op),
    }
}

/// The CUDA backend, made once per process (a context and the module load cost ~100 ms), or
/// why it cannot be had.
static CUDA: OnceLock<std::result::Result<Arc<dyn Backend>, Error>> = OnceLock::new();
static CPU: Mutex<Option<Arc<dyn Backend>>> = Mutex::new(None);

fn cuda() -> std::result::Result<Arc<dyn Backend>, Error> {
    CUDA.get_or_init(|| backend::select(BackendChoice::Cuda).map(Arc::from)).clone()
}

fn cpu() -> Arc<dyn Backend> {
    CPU.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(|| Arc::from(backend::select(BackendChoice::Cpu).expect("the CPU backend is always there")))
        .clone()
}

/// The backend for `choice` ("auto", "cpu" or "cuda"): auto is the GPU when usable.
pub fn backend(choice: &str) -> Result<Arc<dyn Backend>> {
    match choice.parse::<BackendChoice>()? {
        BackendChoice::Cpu => Ok(cpu()),
        BackendChoice::Cuda => cuda(),
        BackendChoice::Auto => Ok(cuda().unwrap_or_else(|_| cpu())),
    }
}

/// The backend of SVGP work: as [`backend`], but auto is the CPU until the CUDA SVGP kernels
/// have run on a GPU (`batchgp::svgp::backend_choice`); "cuda" runs them.
pub fn svgp_backend(choice: &str) -> Result<Arc<dyn Backend>> {
    match batchgp::svgp::backend_choice(choice.parse::<BackendChoice>()?) {
        BackendChoice::Cpu => Ok(cpu()),
        _ => backend(choice),
    }
}

/// Why CUDA is not usable, or None when it is.
pub fn cuda_status() -> (Option<String>, Option<String>) {
    match cuda() {
        Ok(be) => (Some(be.describe()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// What the fit job tells the waiting thread.
enum Msg<R> {
    Start(usize),
    Progress { iteration: usize, running: usize, converged: usize, total: usize },
    Done(Box<Result<R>>),
}

/// The observer the core calls on the worker: it only sends messages and reads the stop flag.
struct ChannelObserver<'s, R> {
    tx: mpsc::Sender<Msg<R>>,
    stop: &'s AtomicBool,
    progress: bool,
    last: Option<Instant>,
}

impl<R: Send> FitObserver for ChannelObserver<'_, R> {
    fn init(&mut self, members: usize) {
        if self.progress {
            let _ = self.tx.send(Msg::Start(members));
        }
    }
    fn iter(&mut self, p: &FitProgress<'_>) {
        if self.progress && self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.last = Some(Instant::now());
            let _ = self.tx.send(Msg::Progress {
                iteration: p.iteration,
                running: p.running,
                converged: p.converged,
                total: p.total,
            });
        }
    }
    fn stop(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs a fit without the GIL, interruptible by Ctrl-C, drawing progress through `progress`
/// (a Python object with `start(total)` and `update(iteration, running, converged, total)`).
///
/// `job` builds and runs the request (an exact or an SVGP fit) with the observer it is given.
/// The result is the fit's, or the KeyboardInterrupt (or the progress object's exception) that
/// stopped it.
pub fn fit_interruptible<R, J>(py: Python<'_>, progress: Option<Py<PyAny>>, job: J) -> PyResult<Result<R>>
where
    R: Send,
    J: FnOnce(&mut dyn FitObserver) -> Result<R> + Send,
{
    let stop = AtomicBool::new(false);
    let mut raised: Option<PyErr> = None;
    let wants_progress = progress.is_some();
    let outcome = py.detach(|| {
        let (tx, rx) = mpsc::channel::<Msg<R>>();
        in_place_scope(|scope| -> Option<Result<R>> {
            let stop_ref = &stop;
            scope.spawn(move |_| {
                let mut obs = ChannelObserver { tx: tx.clone(), stop: stop_ref, progress: wants_progress, last: None };
                let r = job(&mut obs);
                let _ = tx.send(Msg::Done(Box::new(r)));
            });
            loop {
                let msg = match rx.recv_timeout(POLL) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    // The job ended without a result: it panicked; the scope re-raises it.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                };
                if let Some(Msg::Done(r)) = msg {
                    return Some(*r);
                }
                if stop.load(Ordering::Relaxed) {
                    continue; // already stopping: wait for the job to end
                }
                Python::attach(|py| {
                    let drawn = match (&msg, &progress) {
                        (Some(Msg::Start(total)), Some(p)) => p.bind(py).call_method1("start", (*total,)).map(drop),
                        (Some(Msg::Progress { iteration, running, converged, total }), Some(p)) => {
                            p.bind(py).call_method1("update", (*iteration, *running, *converged, *total)).map(drop)
                        }
                        _ => Ok(()),
                    };
                    if let Err(e) = drawn.and_then(|_| py.check_signals()) {
                        raised = Some(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                });
            }
        })
    });
    if let Some(e) = raised {
        return Err(e);
    }
    match outcome {
        Some(r) => Ok(r),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err("the fit ended without a result")),
    }
}

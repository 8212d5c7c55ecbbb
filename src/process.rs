//! Processes: run a plain function of this program in a new OS process, like Python's
//! `multiprocessing.Process(target=f, args=(x,))`.
//!
//! ```
//! fn square(n: i64) {
//!     println!("Square: {}", n * n);
//! }
//!
//! fn main() -> Result<(), interproc::Error> {
//!     interproc::process::init(); // first line: in a spawned child, runs `square` and exits
//!     let mut p = interproc::Process::spawn(square, 5i64)?;
//!     let status = p.join()?;
//!     assert!(status.success());
//!     Ok(())
//! }
//! ```
//!
//! # How a function crosses `exec`
//!
//! [`Process::spawn`] does not fork a copy of the running program (forking a multi-threaded
//! process is a minefield); it starts the program afresh and tells the new process which
//! function to run, with which argument:
//!
//! 1. The argument is serialised with `serde_json` and written, behind a fixed header, into an
//!    anonymous memory file (`memfd`, close-on-exec). Any size works; nothing touches the
//!    filesystem and the kernel frees the file when the last descriptor closes.
//! 2. The program is re-executed through `/proc/self/exe`: the very file this process runs,
//!    even if the path it was started from has since been replaced or deleted (a rebuild).
//!    `argv[0]` is kept; no other arguments are passed unless the [`Builder`] adds some.
//!    Between `fork` and `exec`, the child writes its own pid into the header and clears
//!    close-on-exec on the memfd (for itself only); `INTERPROC_PROCESS_FD=<fd>` names it.
//! 3. The function is named by its distance from an anchor function of this crate, and so is a
//!    `trampoline::<A>` instantiated for the argument type: ASLR moves the whole executable,
//!    never the distances inside it. The trampoline deserialises `A` and calls `f`.
//! 4. In the child, [`init`] (the first line of `main`) finds the variable, removes it from the
//!    environment, adopts the memfd, checks it, runs the function and exits.
//!
//! ## The payload header
//!
//! Little-endian `u64` words; `json` follows the header, the refusal reason follows `json`.
//! Words 0..=2 keep their place in every format version, so any version can tell whose
//! payload it holds.
//!
//! | word | offset | written by | meaning |
//! |------|--------|------------|---------|
//! | magic | 0 | parent | `b"ipproc\0"` + format version byte |
//! | state | 8 | parent: `NEW`; worker: `RUNNING` or `REFUSED_*` | see below |
//! | child pid | 16 | the forked child, before `exec` | whom the payload is for |
//! | function | 24 | parent | `f - anchor` (wrapping) |
//! | trampoline | 32 | parent | `trampoline::<A> - anchor` |
//! | exe dev, ino, size, mtime, mtime ns | 40..80 | parent | identity of the executable |
//! | json len | 80 | parent | bytes of JSON at offset 96 |
//! | reason len | 88 | worker, on refusal | bytes of text at `96 + json len` |
//!
//! There are no atomics: the parent writes everything before `fork`; the forked child writes
//! its pid before `exec`, and the program it becomes reads it after; the worker writes its
//! state, and the parent reads it only after reaping the child (`waitpid` orders the two).
//! Everyone uses positional reads and writes (`pread`/`pwrite`), never the shared file offset.
//!
//! # What `join` reports
//!
//! | the child ... | `join()` |
//! |---------------|----------|
//! | returned from the function | `Ok(status)`, `status.success()` |
//! | panicked in it | `Ok(status)` with code [`PANIC_EXIT_CODE`] (101, as a panicking `main`) |
//! | called `std::process::exit(n)` | `Ok(status)` with code `n` |
//! | was killed by a signal (e.g. [`Process::kill`]) | `Ok(status)`, `status.signal()` says which |
//! | could not deserialise its argument | `Err(Error::InvalidArgument(..))`, exit code [`REFUSED_EXIT_CODE`] |
//! | runs another executable than the parent | `Err(Error::Incompatible { .. })`, same code |
//! | exited without ever calling [`init`] | `Err(Error::Io(..))` whose message says so |
//!
//! Refusals also print a line on the child's stderr. With `panic = "abort"`, a panic is a
//! `SIGABRT`: `join` reports that signal.
//!
//! # If a program forgets to call `init()`
//!
//! The child then runs `main` as if started by hand. The crate limits the damage and tells:
//! - `spawn` in a process that still carries `INTERPROC_PROCESS_FD` (set by a parent and never
//!   consumed by `init`) returns `Err(Error::InvalidArgument(..))` instead of starting another
//!   copy: a forgotten `init` cannot turn into a fork bomb.
//! - When the child exits (by exit code, not by signal) without having picked up its payload,
//!   `join` returns an `Err` that names the cause, instead of a success that never happened.
//! - Programs such a child starts inherit the variable and the descriptor; their `init` sees a
//!   payload addressed to another pid, ignores it and closes the descriptor. `init` also
//!   ignores, with a warning on stderr, a variable naming no payload at all.
//!
//! # Standard streams, dropping, zombies
//!
//! The child's stdout and stderr are the parent's; its stdin is `/dev/null` (as in
//! `multiprocessing`); the [`Builder`] changes either. Dropping a [`Process`] that was not
//! joined does *not* kill it (like a non-daemon `multiprocessing.Process`): if it has already
//! exited it is reaped on the spot, otherwise a small detached thread waits for it, so a dropped
//! child never lingers as a zombie. The child outlives the parent if the parent exits first.
//!
//! # Tests and other programs whose `main` is not yours
//!
//! A libtest binary's `main` is the test harness: it must be told which test to run, and that
//! test must call [`init`] first. [`Builder::for_test`] passes
//! `<test name> --exact --nocapture --test-threads=1 --include-ignored`. While a worker runs,
//! `init` called from any *other* thread of that process blocks for good (the process exits when
//! the function returns), so a harness that runs several tests at once cannot run their normal
//! bodies beside the worker.
//!
//! # Limitations
//!
//! - Linux only (`memfd`, `/proc/self/exe`, pidfds).
//! - The function and `interproc` must be linked into the executable itself, as Rust does by
//!   default; `spawn` refuses, when `dladdr` can tell, a function in a shared library and an
//!   `interproc` that is itself a shared library (the child could load another build of it).
//! - The argument must round-trip through `serde_json`: non-string map keys fail in `spawn`;
//!   a `NaN` float becomes `null` and fails in the child (`Error::InvalidArgument` from `join`).
//! - `init` removes the variable with `std::env::remove_var`, which can race with C code reading
//!   the environment in another thread: call it first thing in `main`, as documented.

use std::env;
use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

/// Exit code of a child whose function panicked (the code of a panicking Rust `main`).
pub const PANIC_EXIT_CODE: i32 = 101;

/// Exit code of a child that refused its payload (argument that does not deserialise, another
/// executable, a damaged header). `join` turns it into an `Err` naming the reason.
pub const REFUSED_EXIT_CODE: i32 = 102;

/// Names the payload descriptor in a spawned child.
const FD_VAR: &str = "INTERPROC_PROCESS_FD";

/// The memfd's name; `/proc/<pid>/fd/<fd>` shows `/memfd:interproc-process (deleted)`.
const MEMFD_NAME: &CStr = c"interproc-process";

// ---------------------------------------------------------------------------------------------
// The payload header.

/// `b"ipproc\0"` and the format version in the last byte.
const MAGIC: u64 = u64::from_le_bytes(*b"ipproc\0\x01");
const HEADER_WORDS: usize = 12;
const HEADER_LEN: u64 = (HEADER_WORDS * 8) as u64;
const STATE_OFFSET: u64 = 8;
const CHILD_PID_OFFSET: u64 = 16;
const REASON_LEN_OFFSET: u64 = 88;
/// Longest refusal reason kept in the payload.
const MAX_REASON: usize = 4096;

/// Written by the parent: nobody has picked the payload up.
const STATE_NEW: u64 = 0;
/// Written by the worker right before it calls the function.
const STATE_RUNNING: u64 = 1;
/// The child runs another executable than the parent.
const STATE_REFUSED_BINARY: u64 = 2;
/// The header does not check out.
const STATE_REFUSED_PAYLOAD: u64 = 3;
/// The argument does not deserialise.
const STATE_REFUSED_ARGUMENT: u64 = 4;

/// Identity of an executable file: what `stat` says of `/proc/self/exe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExeId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: u64,
    mtime_nsec: u64,
}

impl ExeId {
    fn current() -> io::Result<ExeId> {
        let m = fs::metadata("/proc/self/exe")?;
        Ok(ExeId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime() as u64,
            mtime_nsec: m.mtime_nsec() as u64,
        })
    }
}

/// The payload header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    magic: u64,
    state: u64,
    child_pid: u64,
    function: u64,
    trampoline: u64,
    exe: ExeId,
    json_len: u64,
    reason_len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let words: [u64; HEADER_WORDS] = [
            self.magic,
            self.state,
            self.child_pid,
            self.function,
            self.trampoline,
            self.exe.dev,
            self.exe.ino,
            self.exe.size,
            self.exe.mtime,
            self.exe.mtime_nsec,
            self.json_len,
            self.reason_len,
        ];
        let mut bytes = [0u8; HEADER_LEN as usize];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    fn decode(bytes: &[u8; HEADER_LEN as usize]) -> Header {
        let mut w = [0u64; HEADER_WORDS];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        Header {
            magic: w[0],
            state: w[1],
            child_pid: w[2],
            function: w[3],
            trampoline: w[4],
            exe: ExeId {
                dev: w[5],
                ino: w[6],
                size: w[7],
                mtime: w[8],
                mtime_nsec: w[9],
            },
            json_len: w[10],
            reason_len: w[11],
        }
    }

    /// Where the refusal reason goes: right after the JSON. `None` if that overflows.
    fn reason_offset(&self) -> Option<u64> {
        HEADER_LEN.checked_add(self.json_len)
    }
}

fn read_header(file: &File) -> io::Result<Header> {
    let mut bytes = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(Header::decode(&bytes))
}

// ---------------------------------------------------------------------------------------------
// Naming functions across exec.

/// The reference point for code addresses. Never inlined, so it has an address; its distance
/// to any function of the same executable is the same in every process running that file.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> usize {
    anchor as fn() as usize
}

/// Deserialises the argument, reports that the function is about to run, and runs it.
/// `Err` (nothing was run) if the JSON does not deserialise into `A`.
type Trampoline = fn(usize, Vec<u8>, &mut dyn FnMut()) -> std::result::Result<(), String>;

fn trampoline<A: DeserializeOwned>(
    function: usize,
    json: Vec<u8>,
    started: &mut dyn FnMut(),
) -> std::result::Result<(), String> {
    let arg: A = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    drop(json);
    // SAFETY: `function` is the address of an `fn(A)`: the parent's `spawn::<A>` took it from
    // its `f: fn(A)` and instantiated this very trampoline with the same `A`; `init` relocated
    // both by the distance the executable moved, after checking it runs the parent's file.
    let f = unsafe { std::mem::transmute::<*const (), fn(A)>(function as *const ()) };
    started();
    f(arg);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The child side.

/// Where [`init`] stands in this process.
enum InitState {
    /// `init` has not looked yet.
    Unchecked,
    /// Not a spawned worker (or the payload was somebody else's): `init` returns at once.
    Normal,
    /// This thread runs the spawned function; the process exits when it returns.
    Worker(ThreadId),
}

/// Runs the spawned function if this process is a child started by [`Process::spawn`], then
/// exits the process; returns at once otherwise. Call it on the first line of `main`.
///
/// In a worker, `init` never returns: it removes `INTERPROC_PROCESS_FD` from the environment,
/// runs the function, and exits with 0 when it returns, [`PANIC_EXIT_CODE`] when it panics and
/// [`REFUSED_EXIT_CODE`] (with a message on stderr) when the payload cannot be used. Called
/// again from the function's own thread it returns at once; called from any other thread of a
/// worker it blocks until the process exits. In any other process it does nothing (after the
/// first call, it costs a mutex lock). See the [module documentation](self) for the details.
///
/// # Examples
///
/// ```
/// fn greet(name: String) {
///     println!("hello, {name}");
/// }
///
/// fn main() -> Result<(), interproc::Error> {
///     interproc::process::init();
///     let mut p = interproc::Process::spawn(greet, "world".to_string())?;
///     assert!(p.join()?.success());
///     Ok(())
/// }
/// ```
pub fn init() {
    static STATE: Mutex<InitState> = Mutex::new(InitState::Unchecked);
    let me = thread::current().id();
    let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    match *state {
        InitState::Normal => return,
        InitState::Worker(worker) if worker == me => return,
        InitState::Worker(_) => {
            drop(state);
            loop {
                thread::park();
            }
        }
        InitState::Unchecked => {}
    }
    match take_payload() {
        None => *state = InitState::Normal,
        Some(job) => {
            *state = InitState::Worker(me);
            drop(state);
            job.run()
        }
    }
}

/// A payload addressed to this process, checked, with its code addresses relocated.
struct Job {
    file: File,
    reason_offset: u64,
    function: usize,
    trampoline: usize,
    json: Vec<u8>,
}

/// Looks for a payload addressed to this process. `None`: not a worker (no variable, or a
/// variable inherited from elsewhere). Exits the process if the payload is ours but unusable.
fn take_payload() -> Option<Job> {
    let value = env::var_os(FD_VAR)?;
    // Gone before anything else runs: neither this program's spawns nor the programs it
    // starts see it.
    env::remove_var(FD_VAR);
    let adopted = value
        .to_str()
        .and_then(|s| s.parse::<RawFd>().ok())
        .map(|fd| sys::process::adopt_memfd(fd, &MEMFD_NAME.to_string_lossy()));
    let file = match adopted {
        Some(Ok(Some(file))) => file,
        _ => {
            eprintln!(
                "interproc: ignoring {FD_VAR}={value:?}: that descriptor holds no process \
                 payload (the variable was inherited from elsewhere); main() runs normally"
            );
            return None;
        }
    };
    let header = match read_header(&file) {
        Ok(h) => h,
        Err(e) => refuse(
            &file,
            None,
            STATE_REFUSED_PAYLOAD,
            &format!("cannot read the payload: {e}"),
        ),
    };
    if header.child_pid != u64::from(std::process::id()) {
        // Addressed to another process, which started this one without consuming it (it never
        // called init()). Not ours: close it and run main() normally.
        return None;
    }
    if header.magic != MAGIC {
        refuse(
            &file,
            None,
            STATE_REFUSED_PAYLOAD,
            &format!("unknown payload format {:#018x}", header.magic),
        );
    }
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (json_len, reason_offset) = match (usize::try_from(header.json_len), header.reason_offset())
    {
        (Ok(n), Some(end)) if end <= file_len => (n, end),
        _ => refuse(
            &file,
            None,
            STATE_REFUSED_PAYLOAD,
            &format!(
                "argument of {} bytes does not fit a payload of {file_len}",
                header.json_len
            ),
        ),
    };
    match ExeId::current() {
        Ok(exe) if exe == header.exe => {}
        Ok(exe) => refuse(
            &file,
            Some(reason_offset),
            STATE_REFUSED_BINARY,
            &format!(
                "spawned from executable {:?} but running {exe:?} (rebuilt or replaced?)",
                header.exe
            ),
        ),
        Err(e) => refuse(
            &file,
            Some(reason_offset),
            STATE_REFUSED_BINARY,
            &format!("cannot identify /proc/self/exe: {e}"),
        ),
    }
    let mut json = vec![0u8; json_len];
    if let Err(e) = file.read_exact_at(&mut json, HEADER_LEN) {
        refuse(
            &file,
            Some(reason_offset),
            STATE_REFUSED_PAYLOAD,
            &format!("cannot read the argument: {e}"),
        );
    }
    let anchor = anchor_address();
    Some(Job {
        file,
        reason_offset,
        function: anchor.wrapping_add(header.function as usize),
        trampoline: anchor.wrapping_add(header.trampoline as usize),
        json,
    })
}

impl Job {
    fn run(self) -> ! {
        let Job {
            file,
            reason_offset,
            function,
            trampoline,
            json,
        } = self;
        // SAFETY: `trampoline` is the parent's `trampoline::<A> as Trampoline` moved by the
        // distance this executable moved: the payload is addressed to this process (pid), comes
        // from a process running this very file (device, inode, size, mtime checked above), and
        // the parent checked with dladdr that the trampoline and the anchor share one loaded
        // object, the executable itself (`in_main_executable`). So it is that function, and its
        // signature is exactly `Trampoline`.
        let trampoline = unsafe { std::mem::transmute::<*const (), Trampoline>(trampoline as _) };
        let mut payload = Some(file);
        let outcome = {
            let mut started = || {
                if let Some(file) = payload.take() {
                    // Best effort: should it fail, join() calls the run a forgotten init().
                    let _ = file.write_all_at(&STATE_RUNNING.to_le_bytes(), STATE_OFFSET);
                }
            };
            panic::catch_unwind(AssertUnwindSafe(|| {
                trampoline(function, json, &mut started)
            }))
        };
        match (outcome, payload) {
            (Ok(Ok(())), _) => std::process::exit(0),
            (Ok(Err(reason)), Some(file)) => {
                refuse(&file, Some(reason_offset), STATE_REFUSED_ARGUMENT, &reason)
            }
            (Ok(Err(_)), None) => std::process::exit(REFUSED_EXIT_CODE),
            (Err(_), _) => std::process::exit(PANIC_EXIT_CODE),
        }
    }
}

/// Records why the payload is refused (for the parent's `join`), says it on stderr, and exits
/// with [`REFUSED_EXIT_CODE`].
fn refuse(file: &File, reason_offset: Option<u64>, state: u64, reason: &str) -> ! {
    eprintln!("interproc: cannot run the spawned function: {reason}");
    let bytes = &reason.as_bytes()[..reason.len().min(MAX_REASON)];
    if let Some(offset) = reason_offset {
        if file.write_all_at(bytes, offset).is_ok() {
            let _ = file.write_all_at(&(bytes.len() as u64).to_le_bytes(), REASON_LEN_OFFSET);
        }
    }
    let _ = file.write_all_at(&state.to_le_bytes(), STATE_OFFSET);
    std::process::exit(REFUSED_EXIT_CODE)
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// Configures how a [`Process`] is started: extra arguments and environment for the child,
/// its standard streams, its working directory. [`Process::spawn`] is `Builder::new().spawn`.
///
/// # Examples
///
/// ```no_run
/// use std::process::Stdio;
///
/// fn work(n: u32) {
///     println!("{n}");
/// }
///
/// # fn main() -> Result<(), interproc::Error> {
/// interproc::process::init();
/// let mut p = interproc::Process::builder()
///     .env("RUST_LOG", "debug")
///     .stdout(Stdio::piped())
///     .spawn(work, 7u32)?;
/// let out = p.take_stdout().expect("piped");
/// p.join()?;
/// # drop(out);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    current_dir: Option<PathBuf>,
}

impl Builder {
    /// A builder with the defaults: no arguments beyond `argv[0]`, the parent's environment,
    /// stdin from `/dev/null`, stdout and stderr inherited, the parent's working directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new();
    /// # drop(builder);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds an argument after `argv[0]` (by default the child gets none: its `main` calls
    /// [`init`] before it would look at them).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().arg("--worker");
    /// # drop(builder);
    /// ```
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Builder {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments, see [`Builder::arg`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().args(["-v", "--quiet"]);
    /// # drop(builder);
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Routes the child into one test of a libtest binary (`cargo test`): passes
    /// `<test_name> --exact --nocapture --test-threads=1 --include-ignored`. That test must
    /// call [`init`] first; it then runs the spawned function instead of its body.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn child(n: u32) {
    ///     assert_eq!(n, 3);
    /// }
    ///
    /// #[test]
    /// fn spawns_a_child() {
    ///     interproc::process::init();
    ///     let mut p = interproc::Process::builder()
    ///         .for_test("spawns_a_child")
    ///         .spawn(child, 3u32)
    ///         .unwrap();
    ///     assert!(p.join().unwrap().success());
    /// }
    /// ```
    pub fn for_test(self, test_name: &str) -> Builder {
        self.args([
            test_name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
    }

    /// Sets an environment variable in the child (on top of the parent's environment).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().env("RUST_BACKTRACE", "1");
    /// # drop(builder);
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Builder {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The child's stdin (default: `/dev/null`). A piped stdin is taken with
    /// [`Process::take_stdin`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().stdin(std::process::Stdio::inherit());
    /// # drop(builder);
    /// ```
    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Builder {
        self.stdin = Some(stdin.into());
        self
    }

    /// The child's stdout (default: inherited). A piped stdout is taken with
    /// [`Process::take_stdout`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().stdout(std::process::Stdio::piped());
    /// # drop(builder);
    /// ```
    pub fn stdout(mut self, stdout: impl Into<Stdio>) -> Builder {
        self.stdout = Some(stdout.into());
        self
    }

    /// The child's stderr (default: inherited). A piped stderr is taken with
    /// [`Process::take_stderr`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().stderr(std::process::Stdio::null());
    /// # drop(builder);
    /// ```
    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Builder {
        self.stderr = Some(stderr.into());
        self
    }

    /// The child's working directory (default: the parent's).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = interproc::process::Builder::new().current_dir("/tmp");
    /// # drop(builder);
    /// ```
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Builder {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts a new process that runs `f(arg)` (see [`Process::spawn`]).
    ///
    /// # Errors
    ///
    /// As [`Process::spawn`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(n: u32) {
    ///     println!("{n}");
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::builder().arg("--quiet").spawn(work, 1u32)?;
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn<A>(self, f: fn(A), arg: A) -> Result<Process>
    where
        A: Serialize + DeserializeOwned,
    {
        if env::var_os(FD_VAR).is_some() {
            return Err(Error::InvalidArgument(format!(
                "this process was started by Process::spawn, but its main() never called \
                 interproc::process::init() ({FD_VAR} is still set); call it first thing in \
                 main(). Refusing to spawn, which would run main() again and again"
            )));
        }
        let json = serde_json::to_vec(&arg).map_err(|e| {
            Error::InvalidArgument(format!("cannot serialise the argument to JSON: {e}"))
        })?;
        drop(arg);
        let anchor = anchor_address();
        let function = f as usize;
        let tramp = trampoline::<A> as Trampoline as usize;
        // The child checks that it runs the parent's executable file, and relocates the
        // distances by where *its* anchor lies: both only hold if the anchor is in that file.
        // In a shared library (interproc built as a dylib), the child could load another build
        // of the library (rebuilt meanwhile, or another `LD_LIBRARY_PATH`) and call a wrong
        // address.
        if !sys::process::in_main_executable(anchor) {
            return Err(Error::InvalidArgument(
                "interproc is not linked into the executable itself (a shared library?): a \
                 re-executed child could not be sure to find the function"
                    .into(),
            ));
        }
        if !sys::process::same_object(anchor, function) || !sys::process::same_object(anchor, tramp)
        {
            return Err(Error::InvalidArgument(
                "the function does not live in the same executable as interproc (a dynamically \
                 loaded library?): a re-executed child could not find it"
                    .into(),
            ));
        }
        let header = Header {
            magic: MAGIC,
            state: STATE_NEW,
            child_pid: 0,
            function: function.wrapping_sub(anchor) as u64,
            trampoline: tramp.wrapping_sub(anchor) as u64,
            exe: ExeId::current().map_err(Error::Io)?,
            json_len: json.len() as u64,
            reason_len: 0,
        };
        let payload = sys::process::memfd(MEMFD_NAME).map_err(Error::Io)?;
        payload
            .write_all_at(&header.encode(), 0)
            .map_err(Error::Io)?;
        payload.write_all_at(&json, HEADER_LEN).map_err(Error::Io)?;
        drop(json);

        // The very file this process runs, whatever has happened to its path since.
        let mut cmd = Command::new("/proc/self/exe");
        if let Some(arg0) = env::args_os().next() {
            cmd.arg0(arg0);
        }
        cmd.args(&self.args);
        for (key, value) in &self.envs {
            cmd.env(key, value);
        }
        cmd.env(FD_VAR, payload.as_raw_fd().to_string());
        cmd.stdin(self.stdin.unwrap_or_else(Stdio::null));
        if let Some(stdout) = self.stdout {
            cmd.stdout(stdout);
        }
        if let Some(stderr) = self.stderr {
            cmd.stderr(stderr);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        sys::process::pass_to_child(&mut cmd, payload.as_raw_fd(), CHILD_PID_OFFSET);
        let child = cmd.spawn().map_err(Error::Io)?;
        Ok(Process {
            child,
            payload: Some(payload),
            outcome: None,
        })
    }
}

/// How a reaped child ended, as far as `join` is concerned.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    verdict: Verdict,
}

#[derive(Debug)]
enum Verdict {
    /// The function ran (or a signal ended the child): report the status.
    Ran,
    /// The child exited without picking its payload up.
    NeverStarted,
    /// The child refused its payload, with this state word and reason.
    Refused { state: u64, reason: String },
}

impl Outcome {
    fn result(&self, pid: u32) -> Result<ExitStatus> {
        match &self.verdict {
            Verdict::Ran => Ok(self.status),
            Verdict::NeverStarted => Err(Error::Io(io::Error::other(format!(
                "process {pid} ended ({}) without running its function: the program's main() \
                 must call interproc::process::init() first (in a test binary, spawn with \
                 Builder::for_test)",
                self.status
            )))),
            Verdict::Refused {
                state: STATE_REFUSED_ARGUMENT,
                reason,
            } => Err(Error::InvalidArgument(format!(
                "the child could not deserialise its argument: {reason}"
            ))),
            Verdict::Refused {
                state: STATE_REFUSED_BINARY,
                reason,
            } => Err(Error::Incompatible {
                expected: "the executable of the spawning process".into(),
                found: reason.clone(),
            }),
            Verdict::Refused { reason, .. } => Err(Error::corrupted(format!(
                "the child refused its process payload: {reason}"
            ))),
        }
    }
}

/// A function of this program running in another OS process: the analogue of Python's
/// `multiprocessing.Process`.
///
/// Started by [`Process::spawn`] (or a [`Builder`]); the program's `main` must call [`init`]
/// first. See the [module documentation](self) for how it works and what can go wrong.
///
/// Dropping a `Process` does not kill the child; it is reaped in the background when it exits.
///
/// # Examples
///
/// ```
/// fn cube(n: i64) {
///     println!("Cube: {}", n * n * n);
/// }
///
/// fn main() -> Result<(), interproc::Error> {
///     interproc::process::init();
///     let mut p = interproc::Process::spawn(cube, 5i64)?;
///     println!("started {}", p.pid());
///     let status = p.join()?;
///     assert!(status.success() && !p.is_alive());
///     Ok(())
/// }
/// ```
pub struct Process {
    child: Child,
    /// The payload memfd, until the child is reaped and its verdict read.
    payload: Option<File>,
    /// Set once the child is reaped.
    outcome: Option<Outcome>,
}

impl Process {
    /// Starts a new OS process running `f(arg)`, where `f` is a plain function (or a closure
    /// that captures nothing) of this program.
    ///
    /// The program is re-executed from the same file with no extra arguments; its `main` must
    /// call [`init`] first, which runs `f` there. The argument travels as JSON, any size. The
    /// child's stdout and stderr are this process's, its stdin is `/dev/null`; use
    /// [`Process::builder`] to change that or to spawn from a test.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`] if `arg` does not serialise to JSON, if `f` or this crate
    ///   lives in another loaded object than the executable (a shared library), or if this
    ///   process is itself a spawned child whose `main` never called [`init`].
    /// - [`Error::Io`] if the memfd or the process cannot be created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn square(n: i64) {
    ///     println!("Square: {}", n * n);
    /// }
    ///
    /// fn main() -> Result<(), interproc::Error> {
    ///     interproc::process::init();
    ///     let mut p = interproc::Process::spawn(square, 5i64)?;
    ///     p.join()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn spawn<A>(f: fn(A), arg: A) -> Result<Process>
    where
        A: Serialize + DeserializeOwned,
    {
        Builder::new().spawn(f, arg)
    }

    /// A [`Builder`], to set arguments, environment or streams of the child first.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(_: ()) {}
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::builder().env("MODE", "fast").spawn(work, ())?;
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The child's process id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(_: ()) {}
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let p = interproc::Process::spawn(work, ())?;
    /// println!("child pid {}", p.pid());
    /// # Ok(())
    /// # }
    /// ```
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the child runs (it has not exited, or exited but was not yet seen to).
    /// Reaps it without blocking if it has exited; after [`Process::join`] or
    /// [`Process::kill`] it is always false.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(nap, 100u64)?;
    /// while p.is_alive() {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_alive(&mut self) -> bool {
        if self.outcome.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.outcome = Some(self.observe(status));
                false
            }
            Ok(None) => true,
            // ECHILD: reaped behind our back (SIGCHLD ignored, a foreign waitpid(-1)).
            Err(_) => false,
        }
    }

    /// Waits for the child to end and returns its exit status (cached: later calls return the
    /// same). A panic in the function shows as code [`PANIC_EXIT_CODE`], a kill as the signal
    /// (`std::os::unix::process::ExitStatusExt::signal`).
    ///
    /// # Errors
    ///
    /// When the function never ran: [`Error::InvalidArgument`] if the argument did not
    /// deserialise, [`Error::Incompatible`] if the child runs another executable,
    /// [`Error::Corrupted`] for a damaged payload, [`Error::Io`] if the child never called
    /// [`init`] or cannot be waited for.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn fail(_: ()) {
    ///     panic!("boom");
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(fail, ())?;
    /// let status = p.join()?;
    /// assert_eq!(status.code(), Some(interproc::process::PANIC_EXIT_CODE));
    /// # Ok(())
    /// # }
    /// ```
    pub fn join(&mut self) -> Result<ExitStatus> {
        let outcome = match self.outcome.take() {
            Some(outcome) => outcome,
            None => {
                let status = self.child.wait().map_err(Error::Io)?;
                self.observe(status)
            }
        };
        let result = outcome.result(self.pid());
        self.outcome = Some(outcome);
        result
    }

    /// Like [`Process::join`] without blocking: `Ok(None)` while the child runs.
    ///
    /// # Errors
    ///
    /// As [`Process::join`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(_: ()) {}
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(work, ())?;
    /// if p.try_join()?.is_none() {
    ///     println!("still running");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_join(&mut self) -> Result<Option<ExitStatus>> {
        let outcome = match self.outcome.take() {
            Some(outcome) => outcome,
            None => match self.child.try_wait().map_err(Error::Io)? {
                Some(status) => self.observe(status),
                None => return Ok(None),
            },
        };
        let result = outcome.result(self.pid()).map(Some);
        self.outcome = Some(outcome);
        result
    }

    /// Like [`Process::join`], giving up after `timeout`: `Ok(None)` if the child still runs.
    /// Sleeps on a pidfd (on kernels without pidfds, polls in slices of at most 20 ms).
    ///
    /// # Errors
    ///
    /// As [`Process::join`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// fn nap(secs: u64) {
    ///     std::thread::sleep(Duration::from_secs(secs));
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(nap, 60u64)?;
    /// if p.join_timeout(Duration::from_millis(100))?.is_none() {
    ///     p.kill()?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        /// Longest sleep between checks, whatever the pidfd says.
        const SLICE: Duration = Duration::from_millis(100);
        let deadline = Instant::now().checked_add(timeout);
        let pidfd = match self.outcome {
            None => sys::process::pidfd_open(self.pid()).ok(),
            Some(_) => None,
        };
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_join()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => SLICE,
            };
            if left.is_zero() {
                return Ok(None);
            }
            match &pidfd {
                Some(fd) => {
                    sys::process::wait_readable(fd, left.min(SLICE)).map_err(Error::Io)?;
                }
                None => {
                    thread::sleep(left.min(backoff));
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    /// Kills the child with `SIGKILL` and reaps it: when this returns, the child is gone,
    /// [`Process::is_alive`] is false and [`Process::join`] reports signal 9 (or the exit
    /// status, if the child had already ended). Does nothing if it was already reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal cannot be sent or the child cannot be waited for.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::os::unix::process::ExitStatusExt;
    ///
    /// fn forever(_: ()) {
    ///     loop {
    ///         std::thread::park();
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(forever, ())?;
    /// p.kill()?;
    /// assert_eq!(p.join()?.signal(), Some(9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        if self.outcome.is_some() {
            return Ok(());
        }
        self.child.kill().map_err(Error::Io)?;
        let status = self.child.wait().map_err(Error::Io)?;
        self.outcome = Some(self.observe(status));
        Ok(())
    }

    /// Asks the child to stop with `SIGTERM` (`multiprocessing`'s `terminate`), without
    /// waiting. Does nothing if it was already reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn forever(_: ()) {
    ///     loop {
    ///         std::thread::park();
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::spawn(forever, ())?;
    /// p.terminate()?;
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn terminate(&mut self) -> Result<()> {
        if self.outcome.is_some() {
            return Ok(());
        }
        // Not reaped yet (we are the only reaper), so the pid still names our child.
        sys::process::terminate(self.pid()).map_err(Error::Io)
    }

    /// The child's stdin, if the builder asked for `Stdio::piped()` (once).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::io::Write;
    ///
    /// fn work(_: ()) {}
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::builder()
    ///     .stdin(std::process::Stdio::piped())
    ///     .spawn(work, ())?;
    /// p.take_stdin().unwrap().write_all(b"hi\n")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stdout, if the builder asked for `Stdio::piped()` (once).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::io::Read;
    ///
    /// fn work(_: ()) {
    ///     println!("hello");
    /// }
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::builder()
    ///     .stdout(std::process::Stdio::piped())
    ///     .spawn(work, ())?;
    /// let mut out = String::new();
    /// p.take_stdout().unwrap().read_to_string(&mut out)?;
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stderr, if the builder asked for `Stdio::piped()` (once).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn work(_: ()) {}
    ///
    /// # fn main() -> Result<(), interproc::Error> {
    /// interproc::process::init();
    /// let mut p = interproc::Process::builder()
    ///     .stderr(std::process::Stdio::piped())
    ///     .spawn(work, ())?;
    /// let err = p.take_stderr();
    /// # drop(err);
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Turns the status of the just-reaped child into an outcome, reading the payload state.
    fn observe(&mut self, status: ExitStatus) -> Outcome {
        let verdict = match self.payload.take() {
            Some(payload) => verdict(&payload, status),
            None => Verdict::Ran,
        };
        Outcome { status, verdict }
    }
}

/// What the worker recorded in the payload of a reaped child.
fn verdict(payload: &File, status: ExitStatus) -> Verdict {
    let Ok(header) = read_header(payload) else {
        return Verdict::Ran;
    };
    match header.state {
        STATE_RUNNING => Verdict::Ran,
        // Killed by a signal before it got to init(): the signal is the news.
        STATE_NEW if status.code().is_none() => Verdict::Ran,
        STATE_NEW => Verdict::NeverStarted,
        state => {
            let len = usize::try_from(header.reason_len).map_or(MAX_REASON, |n| n.min(MAX_REASON));
            let mut reason = vec![0u8; len];
            let reason = match header.reason_offset() {
                Some(offset) if payload.read_exact_at(&mut reason, offset).is_ok() => {
                    String::from_utf8_lossy(&reason).into_owned()
                }
                _ => String::from("(no reason recorded; see the child's stderr)"),
            };
            Verdict::Refused { state, reason }
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("status", &self.outcome.as_ref().map(|o| o.status))
            .finish()
    }
}

impl Drop for Process {
    /// Does not kill the child. Reaps it if it has exited; otherwise a detached thread waits
    /// for it, so it never stays a zombie. (Should no thread be available, it stays one until
    /// this process exits.)
    fn drop(&mut self) {
        if self.outcome.is_some() || !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = self.pid();
        let _ = thread::Builder::new()
            .name("interproc-reaper".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = sys::process::reap_blocking(pid);
            });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn sample_header() -> Header {
        Header {
            magic: MAGIC,
            state: STATE_RUNNING,
            child_pid: 4242,
            function: 0x1234,
            trampoline: (-0x40i64) as u64,
            exe: ExeId {
                dev: 1,
                ino: 2,
                size: 3,
                mtime: 4,
                mtime_nsec: 5,
            },
            json_len: 6,
            reason_len: 7,
        }
    }

    #[test]
    fn header_round_trips_and_keeps_its_offsets() {
        let h = sample_header();
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), h);
        let word = |offset: u64| {
            let o = offset as usize;
            u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
        };
        assert_eq!(word(0), MAGIC);
        assert_eq!(&bytes[..7], b"ipproc\0");
        assert_eq!(word(STATE_OFFSET), STATE_RUNNING);
        assert_eq!(word(CHILD_PID_OFFSET), 4242);
        assert_eq!(word(REASON_LEN_OFFSET), 7);
        assert_eq!(h.reason_offset(), Some(HEADER_LEN + 6));
        let huge = Header {
            json_len: u64::MAX,
            ..h
        };
        assert_eq!(huge.reason_offset(), None);
    }

    #[test]
    fn addresses_relocate_by_offset() {
        let anchor = anchor_address();
        let f = trampoline::<u32> as Trampoline as usize;
        let off = f.wrapping_sub(anchor) as u64;
        assert_eq!(anchor.wrapping_add(off as usize), f);
        assert!(sys::process::same_object(anchor, f));
    }

    #[test]
    fn trampoline_runs_or_refuses() {
        fn check(n: u32) {
            assert_eq!(n, 9);
        }
        let mut started = 0;
        let t = trampoline::<u32> as Trampoline;
        t(check as fn(u32) as usize, b"9".to_vec(), &mut || {
            started += 1
        })
        .unwrap();
        assert_eq!(started, 1);
        let err = t(check as fn(u32) as usize, b"\"x\"".to_vec(), &mut || {
            started += 1
        });
        assert!(err.is_err());
        assert_eq!(started, 1, "the function must not start on a bad argument");
    }

    #[test]
    fn verdicts_from_payload_state() {
        use std::os::unix::process::ExitStatusExt;
        let file = sys::process::memfd(MEMFD_NAME).unwrap();
        let mut h = sample_header();
        h.state = STATE_NEW;
        h.reason_len = 0;
        file.write_all_at(&h.encode(), 0).unwrap();
        let exited = ExitStatus::from_raw(0);
        let killed = ExitStatus::from_raw(9);
        assert!(matches!(verdict(&file, exited), Verdict::NeverStarted));
        assert!(matches!(verdict(&file, killed), Verdict::Ran));
        h.state = STATE_REFUSED_ARGUMENT;
        h.reason_len = 4;
        file.write_all_at(&h.encode(), 0).unwrap();
        file.write_all_at(b"oops", HEADER_LEN + h.json_len).unwrap();
        match verdict(&file, exited) {
            Verdict::Refused { state, reason } => {
                assert_eq!(state, STATE_REFUSED_ARGUMENT);
                assert_eq!(reason, "oops");
            }
            v => panic!("unexpected {v:?}"),
        }
        let outcome = Outcome {
            status: ExitStatus::from_raw(REFUSED_EXIT_CODE << 8),
            verdict: verdict(&file, exited),
        };
        assert!(matches!(outcome.result(1), Err(Error::InvalidArgument(m)) if m.contains("oops")));
    }

    #[test]
    fn init_outside_a_worker_returns() {
        init();
        init();
    }
}

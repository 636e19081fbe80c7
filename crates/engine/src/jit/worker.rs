//! Background compilation: `N` dedicated threads, each with its own Cranelift
//! translators, take decoded guest code from a job queue and send the compiled bytes
//! back to the guest thread.
//!
//! **Invariants.**
//! - Compile threads never touch guest memory (they get decoded instructions, copied by
//!   the guest thread) and never insert into the code cache: the guest thread inserts
//!   results at its next dispatch point, after checking that no code invalidation
//!   happened since it decoded the job (the job's generation). So a translation of bytes
//!   that a fence.i, munmap or mprotect made stale can never be published.
//! - Tier-1 jobs are taken before tier-2 jobs (a block waiting for tier 1 is being
//!   interpreted; a region waiting for tier 2 already runs translated).
//! - Dropping the [`Pool`] closes the queue and joins every thread: queued jobs are
//!   abandoned (the guest has finished with them), so a run ends after at most the one
//!   translation each thread is in the middle of.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rv64::Insn;
use translate::{Compiled, JumpCacheShape, OptLevel, TranslateError, Translator, TranslatorConfig};

/// Which tier a translation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// One basic block, Cranelift `opt_level=none`.
    Quick,
    /// A region of several blocks (loops inside), Cranelift `opt_level=speed`.
    Region,
}

/// Decoded guest code to compile.
#[derive(Debug)]
pub struct Job {
    /// Cache key: the guest pc of the entry block.
    pub key: u64,
    pub tier: Tier,
    /// Basic blocks; `blocks[0]` starts at `key`.
    pub blocks: Vec<Vec<(u64, Insn)>>,
    /// The invalidation generation when the blocks were decoded.
    pub generation: u64,
    /// Hash of the guest bytes the blocks were decoded from (`persist::span_hash`),
    /// when the code store is on: the translation can then be stored.
    pub guest_hash: Option<[u8; 32]>,
}

/// A finished translation.
#[derive(Debug)]
pub struct Done {
    pub key: u64,
    pub tier: Tier,
    pub generation: u64,
    pub result: Result<Compiled, TranslateError>,
    /// Wall time of the translation in nanoseconds.
    pub cost_ns: u64,
    /// The job's `guest_hash`.
    pub guest_hash: Option<[u8; 32]>,
}

/// One translator per tier, all with chaining on (blocks of both tiers chain) and the
/// executor's jump-cache shape built in.
#[derive(Debug)]
pub struct Translators {
    quick: Translator,
    speed: Translator,
}

impl Translators {
    pub fn new(jump_cache: JumpCacheShape) -> Result<Self, TranslateError> {
        let config = |opt| TranslatorConfig {
            opt,
            chain: true,
            jump_cache: Some(jump_cache),
            guest_size: Some(crate::memory::GUEST_SPACE),
            perms_offset: Some(crate::memory::PERMS_OFFSET),
        };
        Ok(Translators {
            quick: Translator::with_config(config(OptLevel::Quick))?,
            speed: Translator::with_config(config(OptLevel::Speed))?,
        })
    }

    /// The tier-1 translator (also builds the trampoline).
    pub fn quick(&mut self) -> &mut Translator {
        &mut self.quick
    }

    /// Compiles `job`, timing it.
    pub fn compile(&mut self, job: Job) -> Done {
        let start = Instant::now();
        let result = match job.tier {
            Tier::Quick => match job.blocks.first() {
                Some(b) => self.quick.translate(b),
                None => Err(TranslateError::EmptyBlock),
            },
            Tier::Region => {
                let blocks: Vec<&[(u64, Insn)]> = job.blocks.iter().map(|b| &b[..]).collect();
                self.speed.translate_region(&blocks)
            }
        };
        Done {
            key: job.key,
            tier: job.tier,
            generation: job.generation,
            result,
            cost_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            guest_hash: job.guest_hash,
        }
    }
}

/// Jobs waiting for a compile thread: tier-1 jobs are taken before any tier-2 job,
/// because a block waiting for tier 1 is being interpreted (10x slower) while a region
/// waiting for tier 2 already runs as translated code.
#[derive(Debug, Default)]
struct Queue {
    quick: VecDeque<Job>,
    region: VecDeque<Job>,
    /// Set when the pool is dropped: threads finish and queued jobs are abandoned.
    closed: bool,
    /// Threads waiting for a job: `submit` wakes one only then (a wake is a system
    /// call, and a busy thread takes the next job without one).
    idle: usize,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Results sent so far: the guest thread compares it with what it has received
    /// before touching the channel (one load per dispatch instead of a `try_recv`).
    sent: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A compile thread that panicked holding the lock left the queue consistent
        // (every critical section is a single push or pop).
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job, tier 1 first; `None` once the pool is closed.
    fn take(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.closed {
                return None;
            }
            if let Some(job) = q.quick.pop_front().or_else(|| q.region.pop_front()) {
                return Some(job);
            }
            q.idle += 1;
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            q.idle -= 1;
        }
    }
}

/// The compile threads and their queues.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    /// Results, for whichever guest thread polls (behind a lock: a `Receiver` has one
    /// consumer at a time).
    done: Mutex<Receiver<Done>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` (≥ 1) compile threads. Translators are created here, so an
    /// unsupported host is reported before any thread starts.
    pub fn new(n: usize, jump_cache: JumpCacheShape) -> Result<Self, TranslateError> {
        let (done_tx, done_rx) = channel::<Done>();
        let shared = Arc::new(Shared::default());
        let mut translators = Vec::with_capacity(n);
        for _ in 0..n {
            translators.push(Translators::new(jump_cache)?);
        }
        let mut threads = Vec::with_capacity(n);
        for (i, mut tr) in translators.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vmjit-compile-{i}"))
                .spawn(move || {
                    while let Some(job) = shared.take() {
                        if tx.send(tr.compile(job)).is_err() {
                            break;
                        }
                        shared.sent.fetch_add(1, Ordering::Release);
                    }
                });
            // A thread that cannot start just means fewer compile threads; with none,
            // `submit` reports failure and the engine compiles on the guest thread.
            if let Ok(t) = spawned {
                threads.push(t);
            }
        }
        Ok(Pool {
            shared,
            done: Mutex::new(done_rx),
            threads,
        })
    }

    /// Queues a job; gives it back if no compile thread is running.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        if self.threads.is_empty() {
            return Err(job);
        }
        let mut q = self.shared.lock();
        match job.tier {
            Tier::Quick => q.quick.push_back(job),
            Tier::Region => q.region.push_back(job),
        }
        let wake = q.idle > 0;
        drop(q);
        if wake {
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    /// Moves the queued tier-1 job for `key` to the front of the queue: the guest thread
    /// calls this when a block keeps running interpreted while it waits (a loop the
    /// guest is in now), so it is compiled before blocks that went cold meanwhile.
    pub fn promote(&self, key: u64) {
        let mut q = self.shared.lock();
        if let Some(at) = q.quick.iter().position(|j| j.key == key)
            && at > 0
            && let Some(job) = q.quick.remove(at)
        {
            q.quick.push_front(job);
        }
    }

    /// A finished translation, if one is ready (never blocks). `received` counts the
    /// results taken so far; the channel is only looked at when more were sent.
    pub fn try_done(&self, received: usize) -> Option<Done> {
        if self.shared.sent.load(Ordering::Acquire) == received {
            return None;
        }
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .ok()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

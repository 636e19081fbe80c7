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
//! - Dropping the [`Pool`] tells the threads to stop, closes the queue and joins every
//!   thread: queued jobs are abandoned (the guest has finished with them), so a run
//!   ends after at most the one translation each thread is in the middle of.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rv64::Insn;
use translate::{Compiled, OptLevel, TranslateError, Translator, TranslatorConfig};

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
}

/// One translator per tier, all with chaining on (blocks of both tiers chain).
#[derive(Debug)]
pub struct Translators {
    quick: Translator,
    speed: Translator,
}

impl Translators {
    pub fn new() -> Result<Self, TranslateError> {
        Ok(Translators {
            quick: Translator::with_config(TranslatorConfig {
                opt: OptLevel::Quick,
                chain: true,
            })?,
            speed: Translator::with_config(TranslatorConfig {
                opt: OptLevel::Speed,
                chain: true,
            })?,
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
        }
    }
}

/// The compile threads and their queues.
#[derive(Debug)]
pub struct Pool {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Pool {
    /// Starts `n` (≥ 1) compile threads. Translators are created here, so an
    /// unsupported host is reported before any thread starts.
    pub fn new(n: usize) -> Result<Self, TranslateError> {
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let stop = Arc::new(AtomicBool::new(false));
        let mut translators = Vec::with_capacity(n);
        for _ in 0..n {
            translators.push(Translators::new()?);
        }
        let mut threads = Vec::with_capacity(n);
        for (i, mut tr) in translators.into_iter().enumerate() {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let stop_flag = Arc::clone(&stop);
            let spawned = std::thread::Builder::new()
                .name(format!("vmjit-compile-{i}"))
                .spawn(move || {
                    loop {
                        // Hold the lock only to take one job; compile without it.
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                            guard.recv()
                        };
                        let Ok(job) = job else { break };
                        if stop_flag.load(Ordering::Relaxed) {
                            break;
                        }
                        if tx.send(tr.compile(job)).is_err() {
                            break;
                        }
                    }
                });
            // A thread that cannot start just means fewer compile threads; with none,
            // `submit` reports failure and the engine compiles on the guest thread.
            if let Ok(t) = spawned {
                threads.push(t);
            }
        }
        Ok(Pool {
            jobs: if threads.is_empty() {
                None
            } else {
                Some(job_tx)
            },
            done: done_rx,
            threads,
            stop,
        })
    }

    /// Queues a job; gives it back if no compile thread is running.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// A finished translation, if one is ready (never blocks).
    pub fn try_done(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

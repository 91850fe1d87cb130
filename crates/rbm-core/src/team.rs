//! A spinning team of threads for the many tiny parallel steps of small models.
//!
//! A batch of a small model (16 hidden units, 100 samples) is a few hundred microseconds of work,
//! split at two points (the phases, then the gradient). Between them the calling thread runs a
//! few microseconds of serial work, and rayon's idle workers go to sleep after a few dozen
//! yields; waking one again costs a system call and a trip through the scheduler, twice per
//! batch (two threads gave 1.0-1.4x on the 16-hidden MNIST job, with 2.5 sleeps per batch). A
//! [`Team`] keeps its helpers spinning between the steps of an epoch instead, so that each split
//! costs an atomic operation; they only back off (yield, then short sleeps) after about a
//! millisecond without work, and leave when the epoch ends.
//!
//! The helpers are rayon workers (the pool's size is the `--threads` the user chose), and tasks
//! are claimed one at a time, so which thread runs a task never changes what it computes: every
//! task writes its own outputs. The caller claims from the front of a step's tasks and the
//! helpers from the back, so that with two threads a task of a given index tends to run on the
//! same core batch after batch, where the memory it wrote last time (a gradient block's weights
//! and velocity, a piece's chains) still is. A spinning helper takes no other work, so the
//! parallel steps of a team's work go through [`Workers`]; a rayon fork made there runs on the
//! calling thread alone.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rayon::prelude::*;

/// A task of one parallel step, called with the task's index.
type Task<'a> = &'a (dyn Fn(usize) + Sync);

/// Where the parallel steps of a small model's batch run.
#[derive(Clone, Copy)]
pub(crate) enum Workers<'t> {
    /// On rayon's pool, one parallel iterator per step.
    Pool,
    /// On a spinning team (see the module's comment).
    Team(&'t Team),
}

impl Workers<'_> {
    /// Runs `task(i)` for every `i` in `0..n`, in parallel, and returns when all are done.
    pub(crate) fn for_each(self, n: usize, task: Task<'_>) {
        match self {
            Workers::Pool => (0..n).into_par_iter().for_each(task),
            Workers::Team(team) => team.for_each(n, task),
        }
    }
}

/// [`Team::state`] holds the step's generation in its high 32 bits, the next task to claim from
/// the front in the 16 bits below, and one past the next task to claim from the back in the low
/// 16 bits; the step's tasks are all claimed when the two meet. Steps of more tasks run serially.
const MAX_TASKS: usize = 0xFFFF;

/// Spins (`spin_loop` hints, tens of nanoseconds each) before an idle helper starts yielding,
/// about a millisecond: far longer than the serial work between two steps of a batch.
const SPINS: u32 = 1 << 15;

/// Yields after the spins before an idle helper sleeps between looks.
const YIELDS: u32 = 1 << 10;

/// How long an idle helper sleeps between looks once it has spun and yielded.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// Which end of a step's tasks a thread claims from: the caller the front, the helpers the back.
#[derive(Clone, Copy)]
enum End {
    Front,
    Back,
}

/// The shared state of a team: the current step's tasks, claimed by the caller and the helpers.
pub(crate) struct Team {
    /// The generation of the current step and its unclaimed tasks (see [`MAX_TASKS`]).
    state: AtomicU64,
    /// The current step: its generation and the task. The reference's lifetime is the caller's:
    /// it is only used by a thread that has claimed one of the step's tasks, and the caller does
    /// not return before every claimed task is done.
    step: Mutex<Option<(u32, Task<'static>)>>,
    /// Tasks of the current step done.
    done: AtomicUsize,
    /// Set when a task panicked; the caller panics once the step is done.
    panicked: AtomicBool,
    /// Set by the caller when the team's work is over; helpers leave.
    stopped: AtomicBool,
    /// Set while a step runs: a step started from inside a task runs serially instead.
    busy: AtomicBool,
}

/// Stops the team when the caller's work ends, even by a panic (the helpers would spin forever).
struct StopOnDrop<'t>(&'t Team);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl Team {
    fn new() -> Self {
        Team {
            state: AtomicU64::new(0),
            step: Mutex::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `work` with a team made of this thread and the other threads of rayon's pool, no
    /// more than the machine has cores (a spinning helper without a core of its own only takes
    /// time from the others: `--threads 3` on two cores ran 20% slower with two helpers); the
    /// helpers leave when `work` returns. With one thread or one core there are no helpers and
    /// every step runs on the thread that runs `work`.
    pub(crate) fn run<R: Send>(work: impl FnOnce(&Team) -> R + Send) -> R {
        let team = Team::new();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let helpers = rayon::current_num_threads().min(cores).saturating_sub(1);
        // Inside a scope either way: `work` then runs on a worker of the pool, whose own parallel
        // calls (if any) are forked and joined there rather than sent to the pool from outside.
        rayon::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|_| team.help());
            }
            let _stop = StopOnDrop(&team);
            work(&team)
        })
    }

    /// Runs `task(i)` for every `i` in `0..n` on this thread and the helpers, and returns when
    /// all are done. Only the thread that made the team starts steps.
    fn for_each(&self, n: usize, task: Task<'_>) {
        if n == 0 {
            return;
        }
        if n > MAX_TASKS || self.busy.swap(true, Ordering::Acquire) {
            // A step inside a task (or an absurd one): run it here.
            (0..n).for_each(task);
            return;
        }
        // SAFETY: the reference outlives every use: helpers call it only after claiming one of
        // this step's tasks (the claim checks the generation), and this function returns only
        // when all `n` claimed tasks are done; the step is cleared before it returns.
        let task: Task<'static> = unsafe { std::mem::transmute::<Task<'_>, Task<'static>>(task) };
        let generation = ((self.state.load(Ordering::Relaxed) >> 32) as u32).wrapping_add(1);
        self.done.store(0, Ordering::Relaxed);
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, task));
        self.state.store(((generation as u64) << 32) | n as u64, Ordering::Release);
        while let Some(i) = self.claim(generation, End::Front) {
            self.run_task(task, i);
        }
        while self.done.load(Ordering::Acquire) < n {
            std::hint::spin_loop();
        }
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.busy.store(false, Ordering::Release);
        if self.panicked.swap(false, Ordering::AcqRel) {
            panic!("a parallel task of the training step panicked");
        }
    }

    /// Claims the next task of step `generation` from `end`, if any is left.
    fn claim(&self, generation: u32, end: End) -> Option<usize> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let (front, back) = ((state >> 16) & MAX_TASKS as u64, state & MAX_TASKS as u64);
            if (state >> 32) as u32 != generation || front >= back {
                return None;
            }
            let (claimed, next) = match end {
                End::Front => (front, state + (1 << 16)),
                End::Back => (back - 1, state - 1),
            };
            match self.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(claimed as usize),
                Err(now) => state = now,
            }
        }
    }

    fn run_task(&self, task: Task<'_>, i: usize) {
        if catch_unwind(AssertUnwindSafe(|| task(i))).is_err() {
            self.panicked.store(true, Ordering::Release);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// A helper's loop: take tasks of each new step; spin, then yield, then sleep while idle;
    /// leave when the team stops.
    fn help(&self) {
        let mut seen = 0u32;
        let mut idle = 0u32;
        loop {
            let generation = (self.state.load(Ordering::Acquire) >> 32) as u32;
            if generation != seen {
                seen = generation;
                idle = 0;
                let step = *self.step.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((step_generation, task)) = step
                    && step_generation == generation
                {
                    while let Some(i) = self.claim(generation, End::Back) {
                        self.run_task(task, i);
                    }
                }
                continue;
            }
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            idle = idle.saturating_add(1);
            if idle < SPINS {
                std::hint::spin_loop();
            } else if idle < SPINS + YIELDS {
                std::thread::yield_now();
            } else {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_any_pool() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                Team::run(|team| {
                    // Up to the most tasks a step claims from both ends, and one more (serial).
                    for (n, repeats) in [(0, 50), (1, 50), (7, 50), (100, 50), (MAX_TASKS, 2), (MAX_TASKS + 1, 2)] {
                        let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                        for _ in 0..repeats {
                            Workers::Team(team).for_each(n, &|i| {
                                counts[i].fetch_add(1, Ordering::Relaxed);
                            });
                        }
                        let all = counts.iter().all(|c| c.load(Ordering::Relaxed) == repeats);
                        assert!(all, "{threads} threads, {n} tasks");
                        // The team is free for the next step (a serial one too leaves it so).
                        assert!(!team.busy.load(Ordering::Relaxed), "{threads} threads, {n} tasks: still busy");
                    }
                })
            });
        }
    }

    #[test]
    fn a_step_inside_a_task_runs_serially() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let total = AtomicUsize::new(0);
        pool.install(|| {
            Team::run(|team| {
                Workers::Team(team).for_each(4, &|_| {
                    Workers::Team(team).for_each(3, &|_| {
                        total.fetch_add(1, Ordering::Relaxed);
                    });
                })
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_team_still_stops() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                Team::run(|team| {
                    Workers::Team(team).for_each(8, &|i| assert!(i != 5, "task 5 fails"));
                })
            })
        }));
        assert!(result.is_err());
    }
}

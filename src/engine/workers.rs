//! Threads that live as long as a pass, for the pure work of each batch
//! (building drawers) and for freeing what a batch leaves behind.
//!
//! Spawning fresh threads for every batch gave every batch fresh allocator
//! heaps: their pages were set up anew and abandoned at each thread's end
//! with the batch's documents still in them. Idle workers here block on a
//! channel; they never spin (a spinning pool was slower on two cores).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

/// The outcome of one job: its value, or the panic it raised.
type Outcome<Out> = std::thread::Result<Out>;

/// A fixed number of threads running one function over the inputs sent to
/// them, each result handed back in input order.
pub struct Workers<In, Out> {
    jobs: Option<Sender<(usize, In)>>,
    results: Receiver<(usize, Outcome<Out>)>,
    threads: usize,
}

impl<In: Send, Out: Send> Workers<In, Out> {
    /// Starts `threads` workers (at least one) in `scope`, each applying
    /// `work`; they end when the pool is dropped.
    pub fn start<'scope, 'env, F>(
        scope: &'scope Scope<'scope, 'env>,
        threads: usize,
        work: F,
    ) -> Self
    where
        F: Fn(In) -> Out + Send + Sync + 'scope,
        In: 'scope,
        Out: 'scope,
    {
        let threads = threads.max(1);
        let (jobs, queue) = channel::<(usize, In)>();
        let (done, results) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let work = Arc::new(work);
        for _ in 0..threads {
            let (queue, done, work) = (Arc::clone(&queue), done.clone(), Arc::clone(&work));
            scope.spawn(move || loop {
                let job = queue.lock().map(|q| q.recv());
                let Ok(Ok((index, input))) = job else {
                    return;
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| work(input)));
                if done.send((index, outcome)).is_err() {
                    return;
                }
            });
        }
        Workers {
            jobs: Some(jobs),
            results,
            threads,
        }
    }

    /// How many threads work.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Every input through the workers, results in input order. A panic in
    /// a job is raised again here, after the other jobs finished.
    pub fn map(&self, inputs: Vec<In>) -> Vec<Out> {
        let n = inputs.len();
        let jobs = self.jobs.as_ref().expect("the pool is open until dropped");
        for job in inputs.into_iter().enumerate() {
            jobs.send(job)
                .expect("the workers live as long as the pool");
        }
        let mut out: Vec<Option<Outcome<Out>>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let (index, outcome) = self
                .results
                .recv()
                .expect("every worker answers every job it takes");
            out[index] = Some(outcome);
        }
        out.into_iter()
            .map(|o| match o.expect("one answer per job") {
                Ok(value) => value,
                Err(panic) => resume_unwind(panic),
            })
            .collect()
    }
}

impl<In, Out> Drop for Workers<In, Out> {
    fn drop(&mut self) {
        // Closing the queue ends the workers' loops.
        self.jobs.take();
    }
}

/// A thread that frees what it is handed, one thing at a time: handing it
/// the next waits until the previous is freed, so memory stays bounded.
pub struct Discard {
    garbage: SyncSender<Box<dyn Send>>,
}

impl Discard {
    /// Starts the thread in `scope`; it ends when this is dropped.
    pub fn start<'scope>(scope: &'scope Scope<'scope, '_>) -> Self {
        let (garbage, received) = sync_channel::<Box<dyn Send>>(0);
        std::thread::Builder::new()
            .name("discard".into())
            .spawn_scoped(scope, move || {
                for thing in received {
                    drop(thing);
                }
            })
            .expect("a thread to free memory on");
        Discard { garbage }
    }

    /// Frees `thing` on the thread, once it is done with the previous one.
    pub fn free<T: Send + 'static>(&self, thing: T) {
        if let Err(back) = self.garbage.send(Box::new(thing)) {
            // The thread is gone (it cannot panic dropping plain data):
            // free here.
            drop(back.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_whatever_order_the_workers_finish_in() {
        std::thread::scope(|scope| {
            let pool = Workers::start(scope, 3, |n: u64| {
                std::thread::sleep(std::time::Duration::from_millis(20 - n * 3));
                n * 10
            });
            assert_eq!(pool.map((0..6).collect()), vec![0, 10, 20, 30, 40, 50]);
            assert_eq!(pool.map(vec![]), Vec::<u64>::new());
            assert_eq!(pool.map(vec![2]), vec![20]);
        });
    }

    #[test]
    fn the_same_threads_run_every_batch() {
        std::thread::scope(|scope| {
            let pool = Workers::start(scope, 2, |_: u8| std::thread::current().id());
            let mut seen: Vec<_> = (0..20).flat_map(|_| pool.map(vec![0; 4])).collect();
            seen.sort_by_key(|id| format!("{id:?}"));
            seen.dedup();
            assert!(seen.len() <= 2, "{seen:?}");
            assert!(!seen.contains(&std::thread::current().id()));
        });
    }

    #[test]
    fn a_panicking_job_panics_the_caller_and_the_pool_still_ends() {
        let caught = std::panic::catch_unwind(|| {
            std::thread::scope(|scope| {
                let pool = Workers::start(scope, 2, |n: u32| {
                    assert!(n != 3, "job three fails");
                    n
                });
                pool.map((0..6).collect())
            })
        });
        let panic = caught.expect_err("the job's panic reaches the caller");
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("job three fails"), "{message}");
    }

    #[test]
    fn handing_over_waits_until_the_previous_thing_is_freed() {
        struct Slow(Arc<Mutex<Vec<&'static str>>>, &'static str);
        impl Drop for Slow {
            fn drop(&mut self) {
                std::thread::sleep(std::time::Duration::from_millis(30));
                self.0.lock().unwrap().push(self.1);
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|scope| {
            let discard = Discard::start(scope);
            discard.free(Slow(log.clone(), "first"));
            discard.free(Slow(log.clone(), "second"));
            // The second was taken only once the first was freed.
            assert_eq!(log.lock().unwrap().first(), Some(&"first"));
        });
        assert_eq!(*log.lock().unwrap(), vec!["first", "second"]);
    }
}

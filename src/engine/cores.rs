//! Pure work spread over the machine's cores.

use std::sync::Mutex;

/// Applies `f` to every item on all cores (at most eight threads) and
/// returns the results in the items' order. The items are dealt out in
/// small runs as threads become free, not in one share per thread: one
/// user may cost fifty times another, and a thread left with the heavy
/// ones kept the other core idle at the end of every batch. Few items, or
/// one core, run on the calling thread. A panic in `f` is resumed on the
/// caller.
pub fn map_on_cores<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || items.len() < 2 * threads {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let run = count.div_ceil(threads * RUNS_PER_THREAD);
    let mut runs = Vec::with_capacity(count.div_ceil(run));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        runs.push(items.by_ref().take(run).collect::<Vec<T>>());
    }
    let queue = Mutex::new(runs.into_iter().enumerate());
    let (queue, f) = (&queue, &f);
    let mut done: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((i, run)) = next else { break out };
                        out.push((i, run.into_iter().map(f).collect()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut results = Vec::with_capacity(count);
    for (_, run) in done {
        results.extend(run);
    }
    results
}

/// [`map_on_cores`] over borrowed items: `items.iter().map(f)`, results in
/// order.
pub fn map_refs_on_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_on_cores(items.iter().collect(), f)
}

/// How many runs each thread gets on average: enough that the last one
/// to finish leaves the others little to wait for.
const RUNS_PER_THREAD: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items() {
        for n in [0, 1, 3, 17, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let squares = map_on_cores(items, |i| i * i);
            assert_eq!(squares, (0..n).map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            map_on_cores((0..100).collect(), |i: i32| {
                assert!(i != 77, "item 77");
                i
            })
        });
        assert!(caught.is_err());
    }
}

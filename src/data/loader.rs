//! The batch loader: worker threads decode, augment and normalise batches ahead of the GPU
//! through bounded queues. Worker w builds batches w, w + W, w + 2W, ... and the consumer takes
//! them in order, so the batch sequence is the same for any number of workers. A worker that
//! fails (panics) ends the iteration with its error, never with a silently short epoch.

use super::Dataset;
use super::augment::{Augment, sample_rng};
use anyhow::{Result, anyhow};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

pub struct Batch {
    /// Normalised images [batch, c, h, w].
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Real samples at the front; the rest (last batch of an evaluation) repeat sample 0.
    pub valid: usize,
}

/// Sample order for one epoch: a permutation from (seed, epoch).
pub fn shuffled(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x5EED ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

pub struct LoaderOptions {
    pub batch: usize,
    /// Drop a last incomplete batch (training) instead of padding it (evaluation).
    pub drop_last: bool,
    pub augment: Augment,
    /// (seed, epoch) for random augmentation; None: normalise only.
    pub random: Option<(u64, u64)>,
    pub workers: usize,
    /// Batches each worker may hold ready.
    pub prefetch: usize,
}

pub struct Loader {
    receivers: Vec<Receiver<Result<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    count: usize,
}

impl Loader {
    pub fn new(data: Arc<Dataset>, order: Vec<usize>, o: LoaderOptions) -> Loader {
        let count = if o.drop_last { order.len() / o.batch } else { order.len().div_ceil(o.batch) };
        let workers = o.workers.clamp(1, count.max(1));
        let order = Arc::new(order);
        let (mut receivers, mut handles) = (Vec::new(), Vec::new());
        for w in 0..workers {
            let (tx, rx) = sync_channel(o.prefetch.max(1));
            let (data, order, augment, random, batch) =
                (data.clone(), order.clone(), o.augment.clone(), o.random, o.batch);
            handles.push(std::thread::spawn(move || {
                for b in (w..count).step_by(workers) {
                    let made =
                        crate::fault::catch(&format!("data loader worker {w} (batch {})", b + 1), || {
                            if b == 1 && crate::fault::armed("loader-panic", None) {
                                panic!("injected fault (TERN_FAULT=loader-panic)");
                            }
                            make_batch(&data, &order, b, batch, &augment, random)
                        });
                    let failed = made.is_err();
                    if tx.send(made).is_err() || failed {
                        return; // the consumer stopped early, or this worker failed
                    }
                }
            }));
            receivers.push(rx);
        }
        Loader { receivers, handles, next: 0, count }
    }

    pub fn batches(&self) -> usize {
        self.count
    }
}

fn make_batch(
    data: &Dataset,
    order: &[usize],
    b: usize,
    batch: usize,
    aug: &Augment,
    random: Option<(u64, u64)>,
) -> Batch {
    let (c, h, w) = (data.channels, data.height, data.width);
    let size = c * h * w;
    let start = b * batch;
    let valid = batch.min(order.len() - start);
    let mut images = vec![0f32; batch * size];
    let mut labels = vec![0u32; batch];
    for i in 0..batch {
        let k = if i < valid { order[start + i] } else { order[0] };
        let out = &mut images[i * size..(i + 1) * size];
        match random {
            Some((seed, epoch)) => {
                aug.apply(data.image(k), c, h, w, Some(&mut sample_rng(seed, epoch, k as u64)), out)
            }
            None => aug.apply(data.image(k), c, h, w, None::<&mut rand_pcg::Pcg32>, out),
        }
        labels[i] = data.labels[k];
    }
    Batch { images, labels, valid }
}

impl Iterator for Loader {
    /// The next batch, or the error of the worker that should have built it.
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.count {
            return None;
        }
        let (index, w) = (self.next, self.next % self.receivers.len());
        self.next += 1;
        match self.receivers[w].recv() {
            Ok(batch) => {
                if batch.is_err() {
                    self.next = self.count; // nothing after a failed batch
                }
                Some(batch)
            }
            Err(_) => {
                self.next = self.count;
                Some(Err(anyhow!(
                    "data loader worker {w} stopped before batch {} of {}",
                    index + 1,
                    self.count
                )))
            }
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.receivers.clear(); // unblocks workers waiting to send
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

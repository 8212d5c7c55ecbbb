//! Seed inputs for the fuzz targets, taken from real objects, so that the fuzzer starts past
//! the magic/version checks and with the interesting states (queued items, held locks, a
//! wrapped ring) already in reach. [`write_seeds`] writes them as files.

use std::path::Path;
use std::time::Duration;

use super::input::Scratch;
use super::region_ops::{hot_words, KINDS};
use crate::queue::ring::HeapRing;
use crate::region::header::BODY_OFFSET;
use crate::{spsc, Barrier, Condvar, Event, Mutex, Pipe, Queue, RwLock, Semaphore, Value};

/// Patches (as `region_ops` reads them) for every nonzero 8-byte word of the body of the
/// object file `name`: runs of words, at most 64 bytes per patch, at most 32 patches.
fn body_patches(name: &str) -> Vec<u8> {
    let image = std::fs::read(format!("/dev/shm/interproc.{name}")).expect("reading an object");
    let mut patches: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, word) in image.chunks(8).enumerate().skip(BODY_OFFSET / 8) {
        if word.iter().all(|&b| b == 0) {
            continue;
        }
        let at = i * 8;
        match patches.last_mut() {
            Some((start, bytes)) if *start + bytes.len() == at && bytes.len() < 64 => {
                bytes.extend_from_slice(word)
            }
            _ => patches.push((at, word.to_vec())),
        }
    }
    patches.truncate(32);
    let mut out = vec![patches.len() as u8];
    for (at, bytes) in patches {
        out.extend_from_slice(&(at as u16).to_le_bytes());
        out.push(bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out
}

/// A script touching each of `n` kind ops (small arguments: index 0 or 1, short lengths,
/// zero or 1 ms timeouts), then, if `scribble` names a hot word and a mode, a structured
/// scribble of it and the ops again, then `inspect`.
fn script(n: u8, scribble: Option<(usize, u8)>) -> Vec<u8> {
    let mut s = Vec::new();
    for op in 0..n {
        s.extend_from_slice(&[op, op & 1, 3, 1, 2]);
    }
    if let Some((hot, mode)) = scribble {
        s.extend_from_slice(&[0xE8, hot as u8, mode]);
        match mode {
            0 => s.extend_from_slice(&(1u64 << 40).to_le_bytes()), // far off
            1 => s.push(0xFF),                                     // back by one
            _ => s.push(62),                                       // a high bit
        }
        for op in 0..n {
            s.extend_from_slice(&[op, 1, 2, 1, 1]);
        }
    }
    s.push(0xF8);
    s
}

/// Seeds of `region_ops` for kind `k` (an index into [`KINDS`]): `build` brings an object
/// into an interesting state and returns [`body_patches`] taken while its handles are still
/// attached (so the image shows held locks and attached endpoints, whose holders are gone by
/// the time the fuzzer replays it). One seed runs the ops on that image; up to eight more also
/// scribble one of the kind's hot words (a position, a lock word, a count) mid-script.
fn region_seed(
    k: usize,
    variant: u8,
    ops: u8,
    build: impl FnOnce(&str) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut scratch = Scratch::default();
    // The same stagger as the name `region_ops` will pick for this variant, so the patches
    // of an spsc image land on its lines.
    let name = scratch.name_with_stagger("seed", (variant >> 3) as u64);
    let mut prefix = vec![k as u8, variant];
    prefix.extend(build(&name));
    // The first 8 hot words are the registry's; the kind's own follow.
    let hot = hot_words(k, variant, &name).len();
    let scribbles = (8..hot.min(16)).map(|i| Some((i, (i % 3) as u8)));
    std::iter::once(None)
        .chain(scribbles)
        .map(|scribble| [prefix.clone(), script(ops, scribble)].concat())
        .collect()
}

/// The seeds of every kind for `region_ops`.
fn region_ops_seeds() -> Vec<Vec<u8>> {
    assert_eq!(KINDS.len(), 14, "a new kind needs a seed here");
    let per_kind: Vec<Vec<Vec<u8>>> = vec![
        region_seed(0, 2, 15, |n| {
            let tx = spsc::Sender::<u64>::create(n, 4).unwrap();
            let rx = spsc::Receiver::<u64>::open(n).unwrap();
            tx.send_batch(&[11, 22, 33]).unwrap();
            rx.recv().unwrap();
            body_patches(n)
        }),
        region_seed(1, 1, 15, |n| {
            let tx = spsc::Sender::<()>::create(n, 2).unwrap();
            let _rx = spsc::Receiver::<()>::open(n).unwrap();
            tx.send(()).unwrap();
            body_patches(n)
        }),
        region_seed(2, 2, 14, |n| {
            let q = Queue::<u64>::create(n, 4).unwrap();
            q.send_batch(&[5, 6, 7]).unwrap();
            q.recv().unwrap();
            body_patches(n)
        }),
        region_seed(3, 1, 14, |n| {
            let q = Queue::<[u8; 3]>::create(n, 2).unwrap();
            q.send([1, 2, 3]).unwrap();
            body_patches(n)
        }),
        region_seed(4, 0, 10, |n| {
            let a = Pipe::create(n, 1024).unwrap();
            let b = Pipe::open(n).unwrap();
            a.send(b"hello").unwrap();
            a.send(&[7; 20]).unwrap();
            b.send(b"back").unwrap();
            b.recv().unwrap();
            body_patches(n)
        }),
        region_seed(5, 9, 7, |n| {
            let m = Mutex::<u64>::create(n, 9).unwrap();
            let _held = m.lock().unwrap();
            body_patches(n)
        }),
        region_seed(6, 0, 7, |n| {
            let m = Mutex::<()>::create(n, ()).unwrap();
            let _held = m.lock().unwrap();
            body_patches(n)
        }),
        region_seed(7, 5, 9, |n| {
            let r = RwLock::<u32>::create(n, 5).unwrap();
            let r2 = RwLock::<u32>::open(n).unwrap();
            let _a = r.read().unwrap();
            let _b = r2.read().unwrap();
            body_patches(n)
        }),
        region_seed(8, 0, 5, |n| {
            let cv = Condvar::create(n).unwrap();
            cv.notify_all();
            cv.notify_one();
            body_patches(n)
        }),
        region_seed(9, 3, 7, |n| {
            let s = Semaphore::create(n, 3).unwrap();
            assert!(s.try_acquire() && s.try_acquire());
            body_patches(n)
        }),
        region_seed(10, 1, 3, |n| {
            let b = Barrier::create(n, 2).unwrap();
            let b2 = Barrier::open(n).unwrap();
            std::thread::scope(|s| {
                let t = s.spawn(|| b2.wait_timeout(Duration::from_secs(5)));
                // The image shows the other party recorded as waiting.
                while b.waiting() == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let patches = body_patches(n);
                b.wait();
                t.join().unwrap().unwrap();
                patches
            })
        }),
        region_seed(11, 0, 4, |n| {
            let e = Event::create(n).unwrap();
            e.set();
            body_patches(n)
        }),
        region_seed(12, 7, 6, |n| {
            let _v = Value::<u64>::create(n, 0x1234_5678_9abc).unwrap();
            body_patches(n)
        }),
        region_seed(13, 1, 4, |n| {
            let _v = Value::<bool>::create(n, true).unwrap();
            body_patches(n)
        }),
    ];
    per_kind.into_iter().flatten().collect()
}

/// Seeds of `pipe_records`: well-formed rings of a few sizes starting near the `u64` wrap,
/// and hostile states copied from a real ring.
fn pipe_records_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    // Well-formed: size selector, max, mode 0, start, no data words, ops.
    for (size_sel, max, start) in [(2u8, 56u16, u64::MAX - 31), (0, 8, 0), (4, 200, 1 << 40)] {
        let mut s = vec![size_sel];
        s.extend_from_slice(&max.to_le_bytes());
        s.push(0);
        s.extend_from_slice(&start.to_le_bytes());
        s.push(0);
        // push 20, push 9, push 30 (padding), pop, peek+release, push 30, depth, pops.
        s.extend_from_slice(&[
            0, 20, 0, 0, 9, 0, 0, 30, 0, 2, 3, 1, 0, 30, 0, 4, 5, 6, 2, 2, 2,
        ]);
        seeds.push(s);
    }
    // Hostile: a 64-byte ring that carried a few records, its words and positions as they are.
    let h = HeapRing::new(64, 56);
    {
        let ring = h.ring();
        let mut p = crate::queue::ring::Producer::attach(&ring).unwrap();
        let mut c = crate::queue::ring::Consumer::attach(&ring).unwrap();
        assert!(p.try_push(&ring, b"first record").unwrap());
        assert!(p.try_push(&ring, &[9; 20]).unwrap());
        c.try_pop(&ring).unwrap();
        assert!(p.try_push(&ring, &[5; 16]).unwrap());
        let (head, tail) = ring.ctl().positions();
        let mut s = vec![2u8];
        s.extend_from_slice(&56u16.to_le_bytes());
        s.push(1);
        s.extend_from_slice(&head.to_le_bytes());
        s.extend_from_slice(&tail.to_le_bytes());
        s.push(8);
        for w in 0..8 {
            s.extend_from_slice(&h.word(w).to_le_bytes());
        }
        s.extend_from_slice(&[
            1, 2, 0, 8, 0, 1, 3, 4, 7, 0, 1, 4, 1, 0, 0, 0, 0, 0, 0, 0, 5,
        ]);
        seeds.push(s);
    }
    seeds
}

/// Seeds of `spsc_model`: each op once or twice, at a start position near the `u64` wrap.
fn spsc_model_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (cap_sel, flags, start) in [(2u8, 1u8, u64::MAX - 2), (0, 0, 0), (3, 3, u64::MAX / 2)] {
        let mut s = vec![cap_sel, flags];
        if flags & 1 == 1 {
            s.extend_from_slice(&start.to_le_bytes());
        }
        for op in 0..14u8 {
            s.extend_from_slice(&[op, 3, 2, 0, 2]);
        }
        s.extend_from_slice(&[0, 0, 0, 0, 0, 8, 10, 1, 8, 9, 7, 7, 3, 4, 8, 9, 10, 2, 3]);
        seeds.push(s);
    }
    seeds
}

/// Every seed, as `(target, input)`.
pub(crate) fn all() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    out.extend(region_ops_seeds().into_iter().map(|s| ("region_ops", s)));
    out.extend(
        pipe_records_seeds()
            .into_iter()
            .map(|s| ("pipe_records", s)),
    );
    out.extend(spsc_model_seeds().into_iter().map(|s| ("spsc_model", s)));
    out
}

/// Writes every seed as `<dir>/<target>/seed-<n>`; returns how many. Creates (and removes)
/// real objects under `/dev/shm` to take their images.
///
/// # Errors
/// Any error writing the files.
pub fn write_seeds(dir: &Path) -> std::io::Result<usize> {
    let seeds = all();
    for (i, (target, seed)) in seeds.iter().enumerate() {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("seed-{i:03}")), seed)?;
    }
    Ok(seeds.len())
}

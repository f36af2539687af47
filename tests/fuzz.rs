//! Deterministic fuzzing of every file tern reads (issue 10): a few hundred mutations of a
//! checkpoint, a packed model, a PNG and an idx file (bit flips, truncations, header lengths,
//! JSON metadata edits of shapes, dtypes, values, list lengths, huge numbers; non-finite
//! tensor values) through `classify`, `eval` and `train`. Every case must end with exit 0 and
//! finite output, or exit 1 with one error line naming the file; never a panic, a signal or a
//! hang (each process has a time limit). Fixed seeds: the same cases on every run.

mod common;
#[path = "common/process.rs"]
mod process;

use process::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// A safetensors file split into its JSON header and data.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), bytes[8 + n..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// Names of the tensors in a header (not `__metadata__`), sorted.
fn tensor_names(header: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").cloned().collect();
    names.sort();
    names
}

/// Edit a JSON metadata entry (kept as a string inside the header); a non-JSON entry is replaced.
fn edit_meta(header: &mut Value, key: &str, f: impl FnOnce(&mut Value)) {
    let md = &mut header["__metadata__"];
    let mut v: Value = md[key].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
    f(&mut v);
    md[key] = Value::String(v.to_string());
}

/// Numbers that stress a field: zero, off-by-one, large, huge, negative, fractional.
fn odd_numbers() -> Vec<Value> {
    vec![
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(27),
        json!(29),
        json!(4096),
        json!(4097),
        json!(100000),
        json!(1u64 << 40),
        json!(1u64 << 62),
        json!(u64::MAX),
        json!(-1),
        json!(0.5),
        json!(1e300),
        json!("7"),
        Value::Null,
    ]
}

/// One mutation of a safetensors model (checkpoint or packed): (description, bytes). `kind`
/// forces one kind of mutation (12: the training metadata of a checkpoint).
fn mutate_model(bytes: &[u8], rng: &mut Rng, packed: bool, kind: Option<usize>) -> (String, Vec<u8>) {
    let (mut header, mut data) = split(bytes);
    let names = tensor_names(&header);
    match kind.unwrap_or_else(|| rng.below(13)) {
        0 => {
            let mut b = bytes.to_vec();
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (format!("{flips} bit flips"), b)
        }
        1 => {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let mut b = bytes.to_vec();
            let i = 8 + rng.below(n);
            b[i] ^= 1 << rng.below(8);
            (format!("header bit flip at {i}"), b)
        }
        2 => {
            let len = match rng.below(4) {
                0 => rng.below(8),
                1 => 8 + rng.below(64),
                _ => rng.below(bytes.len()),
            };
            (format!("truncated to {len} bytes"), bytes[..len].to_vec())
        }
        3 => {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let v = rng.pick(&[0, 2, n - 1, n + 1, n + 8, 1 << 40, u64::MAX, 100_000_001]);
            let mut b = bytes.to_vec();
            b[..8].copy_from_slice(&v.to_le_bytes());
            (format!("header length {v}"), b)
        }
        4 => {
            let t = rng.pick(&names);
            let d = rng.pick(&["F16", "BF16", "F64", "I32", "U32", "U8", "I64", "BOOL", "F8_E4M3", "XYZ"]);
            header[&t]["dtype"] = json!(d);
            (format!("tensor {t} dtype {d}"), join(&header, &data))
        }
        5 => {
            let t = rng.pick(&names);
            let shape: Vec<u64> = serde_json::from_value(header[&t]["shape"].clone()).unwrap();
            let n: u64 = shape.iter().product();
            let new = match rng.below(6) {
                0 => vec![],
                1 => vec![0],
                2 => shape.iter().rev().cloned().collect(),
                3 => [shape.clone(), vec![1]].concat(),
                4 => vec![n],
                _ => shape.iter().map(|d| d * 2).collect(),
            };
            header[&t]["shape"] = json!(new);
            (format!("tensor {t} shape {new:?}"), join(&header, &data))
        }
        6 => {
            let t = rng.pick(&names);
            let o: Vec<u64> = serde_json::from_value(header[&t]["data_offsets"].clone()).unwrap();
            let new = match rng.below(4) {
                0 => vec![o[1], o[0]],
                1 => vec![o[0] + 4, o[1] + 4],
                2 => vec![o[0], 1 << 40],
                _ => vec![0, o[1] - o[0]],
            };
            header[&t]["data_offsets"] = json!(new);
            (format!("tensor {t} offsets {new:?}"), join(&header, &data))
        }
        7 => {
            // A tensor removed, the file rewritten consistently.
            let t = rng.pick(&names);
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), bytes).unwrap();
            let mut ts = Tensors::read(tmp.path());
            ts.tensors.retain(|x| x.0 != t);
            ts.write(tmp.path());
            (format!("tensor {t} removed"), std::fs::read(tmp.path()).unwrap())
        }
        8 => {
            let floats: Vec<String> =
                names.iter().filter(|n| header[*n]["dtype"] == "F32").cloned().collect();
            let t = rng.pick(&floats);
            let o: Vec<usize> = serde_json::from_value(header[&t]["data_offsets"].clone()).unwrap();
            let i = o[0] + 4 * rng.below((o[1] - o[0]) / 4);
            let v = rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3e38, -3e38, 1e30, 1e-45, -0.0]);
            data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            (format!("tensor {t} value {v} at byte {i}"), join(&header, &data))
        }
        9 | 10 => {
            let (field, value) = match rng.below(12) {
                0 => ("spec.in_channels", rng.pick(&odd_numbers())),
                1 => ("spec.height", rng.pick(&odd_numbers())),
                2 => ("spec.width", rng.pick(&odd_numbers())),
                3 => ("spec.classes", rng.pick(&odd_numbers())),
                4 => (
                    "spec.quant",
                    rng.pick(&[
                        json!("fp"),
                        json!("twn"),
                        json!("ttn"),
                        json!("sttn"),
                        json!("xyz"),
                        json!(3),
                    ]),
                ),
                5 => (
                    "spec.arch",
                    rng.pick(&[json!("resnet20"), json!("resnet56"), json!("resnet1000"), Value::Null]),
                ),
                6 => (
                    "spec.threshold",
                    rng.pick(&[json!(-1.0), json!(0.999), json!(1.0), json!(5.0), json!(1e39), json!("x")]),
                ),
                7 => ("spec.activation", rng.pick(&[json!("ternary"), json!("none")])),
                8 => (
                    "mean",
                    rng.pick(&[json!([]), json!([0.0, 0.0]), json!([1e39]), json!([null]), json!("x")]),
                ),
                9 => (
                    "std",
                    rng.pick(&[
                        json!([]),
                        json!([0.0]),
                        json!([-1.0]),
                        json!([1e39]),
                        json!([0.3, 0.3, 0.3]),
                    ]),
                ),
                10 => {
                    ("classes", rng.pick(&[json!([]), json!(["a"]), json!([1, 2]), json!("x"), Value::Null]))
                }
                _ => (
                    "classes",
                    json!((0..rng.pick(&[9usize, 11, 1000])).map(|i| "c".repeat(i % 50)).collect::<Vec<_>>()),
                ),
            };
            edit_meta(&mut header, "tern", |m| {
                let mut target = m;
                let parts: Vec<&str> = field.split('.').collect();
                for p in &parts[..parts.len() - 1] {
                    target = &mut target[*p];
                }
                target[parts[parts.len() - 1]] = value.clone();
            });
            (format!("tern metadata {field} = {value}"), join(&header, &data))
        }
        11 => {
            let md = &mut header["__metadata__"];
            let what = match rng.below(5) {
                0 => {
                    md.as_object_mut().unwrap().remove("tern");
                    "tern metadata removed".to_string()
                }
                1 => {
                    md["tern"] = json!(rng.pick(&["{", "[]", "null", "{\"spec\": 1}"]));
                    format!("tern metadata {}", md["tern"])
                }
                2 => {
                    md["format"] =
                        json!(rng.pick(&["tern-checkpoint-1", "tern-packed-1", "tern-checkpoint-2", ""]));
                    format!("format {}", md["format"])
                }
                3 => {
                    md.as_object_mut().unwrap().remove("format");
                    "format removed".into()
                }
                _ => {
                    header.as_object_mut().unwrap().remove("__metadata__");
                    "all metadata removed".into()
                }
            };
            (what, join(&header, &data))
        }
        _ if packed => {
            let what = match rng.below(4) {
                0 => {
                    edit_meta(&mut header, "layers", |l| {
                        l.as_array_mut().map(|a| a.pop());
                    });
                    "layers list one short"
                }
                1 => {
                    edit_meta(&mut header, "layers", |l| l[1]["kind"] = json!("dense"));
                    "layer kind changed"
                }
                2 => {
                    edit_meta(&mut header, "layers", |l| l[0]["shape"] = json!([1u64 << 40, 1]));
                    "layer shape huge"
                }
                _ => {
                    header["__metadata__"]["layers"] = json!("not json");
                    "layers not JSON"
                }
            };
            (what.into(), join(&header, &data))
        }
        _ => {
            let (field, value) = match rng.below(8) {
                0 => ("epoch", rng.pick(&odd_numbers())),
                1 => ("step", rng.pick(&odd_numbers())),
                2 => ("best_accuracy", rng.pick(&[json!(2.0), json!(-5.0), json!(0.0)])),
                3 => ("history", rng.pick(&[json!([]), Value::Null])),
                4 => ("config.epochs", rng.pick(&odd_numbers())),
                5 => ("config.batch_size", rng.pick(&odd_numbers())),
                6 => ("config.lr", rng.pick(&[json!(-1.0), json!(0.0), json!(1e39), json!("x")])),
                _ => ("mean", rng.pick(&[json!([]), json!([0.5, 0.5]), json!([1e39])])),
            };
            edit_meta(&mut header, "training", |m| {
                let mut target = m;
                let parts: Vec<&str> = field.split('.').collect();
                for p in &parts[..parts.len() - 1] {
                    target = &mut target[*p];
                }
                target[parts[parts.len() - 1]] = value.clone();
            });
            (format!("training metadata {field} = {value}"), join(&header, &data))
        }
    }
}

/// The CRC of a PNG chunk (type and data).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn mutate_png(bytes: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let mut b = bytes.to_vec();
    match rng.below(5) {
        0 => {
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (format!("{flips} bit flips"), b)
        }
        1 => {
            let len = rng.below(b.len());
            (format!("truncated to {len} bytes"), b[..len].to_vec())
        }
        2 | 3 => {
            // IHDR width/height (bytes 16..24), with a valid CRC so the decoder believes them.
            let (w, h) = (
                rng.pick(&[0u32, 1, 3, 100_000, 1 << 31, u32::MAX]),
                rng.pick(&[0u32, 1, 28, 65_535, 1 << 30]),
            );
            b[16..20].copy_from_slice(&w.to_be_bytes());
            b[20..24].copy_from_slice(&h.to_be_bytes());
            let crc = crc32(&b[12..29]);
            b[29..33].copy_from_slice(&crc.to_be_bytes());
            (format!("IHDR {w}x{h}"), b)
        }
        _ => {
            // The first chunk's length field.
            let v = rng.pick(&[0u32, 12, 14, 1 << 20, u32::MAX]);
            b[8..12].copy_from_slice(&v.to_be_bytes());
            (format!("IHDR length {v}"), b)
        }
    }
}

/// One mutation of the idx files: (file name, description, bytes).
fn mutate_idx(files: &[(String, Vec<u8>)], rng: &mut Rng) -> (String, String, Vec<u8>) {
    let (name, bytes) = rng.pick(files);
    let mut b = bytes.clone();
    let rank = b[3] as usize;
    let what = match rng.below(6) {
        0 => {
            let d = rng.below(rank);
            let v = rng.pick(&[0u32, 1, 3, 20, 27, 29, 63, 65, 1 << 31, u32::MAX]);
            b[4 + 4 * d..8 + 4 * d].copy_from_slice(&v.to_be_bytes());
            format!("dimension {d} = {v}")
        }
        1 => {
            let i = rng.below(4);
            b[i] = rng.pick(&[0u8, 1, 3, 8, 9, 0x0D, 255]);
            format!("magic byte {i} = {}", b[i])
        }
        2 => {
            let len = rng.below(b.len());
            b.truncate(len);
            format!("truncated to {len} bytes")
        }
        3 => {
            use std::io::Write;
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&b).unwrap();
            let gz = z.finish().unwrap();
            let len = rng.pick(&[gz.len(), gz.len() / 2, 12]);
            b = gz[..len].to_vec();
            format!("gzip'd, {len} of {} bytes", gz.len())
        }
        4 if name.contains("labels") => {
            let i = 8 + rng.below(b.len() - 8);
            b[i] = rng.pick(&[9u8, 10, 200, 255]);
            format!("label {} = {}", i - 8, b[i])
        }
        _ => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let i = 16.min(b.len() - 1) + rng.below(b.len().saturating_sub(16));
                b[i] ^= 1 << rng.below(8);
            }
            format!("{flips} bit flips in the data")
        }
    };
    (name, what, b)
}

struct Case {
    what: String,
    args: Vec<String>,
    /// What the one error line must name.
    names: String,
    /// Made by the case before it runs (a run directory for --resume, a dataset directory).
    setup: Option<Box<dyn FnOnce() + Send>>,
}

/// The case's verdict: None if it behaved, else what went wrong.
fn check(case: &Case, r: &Run) -> Option<String> {
    if r.timed_out {
        return Some("timed out".into());
    }
    if let Some(s) = r.signal {
        return Some(format!("killed by signal {s}: {}", r.stderr));
    }
    match r.code {
        0 => {
            let bad = ["NaN", "inf", "null"].into_iter().find(|w| r.stdout.contains(w));
            if let Some(w) = bad {
                return Some(format!("exit 0 with {w} in the output: {}", r.stdout));
            }
            if r.stderr.contains("panicked") {
                return Some(format!("exit 0 after a panic: {}", r.stderr));
            }
            None
        }
        1 => {
            let one_line = r.stderr.lines().count() == 1 && r.stderr.starts_with("error: ");
            if !one_line || r.stderr.contains("panicked") {
                return Some(format!("not one error line: {}", r.stderr));
            }
            if !r.stderr.contains(&case.names) {
                return Some(format!("the error does not name {}: {}", case.names, r.stderr));
            }
            None
        }
        c => Some(format!("exit code {c}: {}", r.stderr)),
    }
}

#[test]
fn mutated_models_images_and_datasets_fail_cleanly() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ckpt = std::fs::read(&f.ckpt).unwrap();
    // A full-precision checkpoint for --init.
    let fp_run = tmp.path().join("fp-run");
    let r = train_tiny(&f.data, &fp_run, &["--quant", "fp"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fp = std::fs::read(fp_run.join("last.safetensors")).unwrap();
    let packed = std::fs::read(&f.packed).unwrap();
    let png = std::fs::read(&f.image).unwrap();
    let idx: Vec<(String, Vec<u8>)> = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .iter()
    .map(|n| (n.to_string(), std::fs::read(f.data.join(n)).unwrap()))
    .collect();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let data = s(&f.data);
    let mut cases: Vec<Case> = Vec::new();
    let mut rng = Rng(0x7E57_0010);
    // Checkpoints through classify, eval, train --resume and train --init.
    for i in 0..130 {
        let runner = [0, 0, 0, 0, 0, 1, 1, 2, 2, 3][i % 10];
        let kind = (runner == 2 && rng.below(2) == 0).then_some(12);
        let (what, bytes) = mutate_model(if runner == 3 { &fp } else { &ckpt }, &mut rng, false, kind);
        let path = dir.join(format!("ckpt{i}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let case = match runner {
            0 => Case {
                what,
                args: vec!["classify".into(), "--json".into(), "--model".into(), s(&path), s(&f.image)],
                names: name,
                setup: None,
            },
            1 => Case {
                what,
                args: vec![
                    "eval".into(),
                    "--model".into(),
                    s(&path),
                    "--dataset".into(),
                    "fashion-mnist".into(),
                    "--data".into(),
                    data.clone(),
                ],
                names: name,
                setup: None,
            },
            2 => {
                let run = dir.join(format!("resume{i}"));
                let (r, p) = (run.clone(), path.clone());
                Case {
                    what,
                    args: vec!["train".into(), "--resume".into(), s(&run), "--epochs".into(), "2".into()],
                    names: s(&run),
                    setup: Some(Box::new(move || {
                        std::fs::create_dir_all(&r).unwrap();
                        std::fs::copy(&p, r.join("last.safetensors")).unwrap();
                    })),
                }
            }
            _ => Case {
                what,
                args: [vec!["train".into(), "--init".into(), s(&path)], out_args(&data, &dir, i)].concat(),
                names: name,
                setup: None,
            },
        };
        cases.push(case);
    }
    // Packed models through classify.
    for i in 0..80 {
        let (what, bytes) = mutate_model(&packed, &mut rng, true, None);
        let path = dir.join(format!("packed{i}.tern.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let args = vec!["classify".into(), "--json".into(), "--model".into(), s(&path), s(&f.image)];
        cases.push(Case { what, args, names: name, setup: None });
    }
    // PNGs through classify.
    for i in 0..60 {
        let (what, bytes) = mutate_png(&png, &mut rng);
        let path = dir.join(format!("image{i}.png"));
        std::fs::write(&path, &bytes).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let args = vec!["classify".into(), "--json".into(), "--model".into(), s(&f.ckpt), s(&path)];
        cases.push(Case { what, args, names: name, setup: None });
    }
    // idx files through training.
    for i in 0..40 {
        let (name, what, bytes) = mutate_idx(&idx, &mut rng);
        let set = dir.join(format!("data{i}"));
        let (d, files) = (set.clone(), idx.clone());
        let file = name.clone();
        let setup = move || {
            std::fs::create_dir_all(&d).unwrap();
            for (n, b) in &files {
                std::fs::write(d.join(n), if *n == file { &bytes } else { b }).unwrap();
            }
        };
        let args = [vec!["train".into()], out_args(&s(&set), &dir, 1000 + i)].concat();
        cases.push(Case { what: format!("{name}: {what}"), args, names: name, setup: Some(Box::new(setup)) });
    }

    let total = cases.len();
    let start = Instant::now();
    let queue = Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    let exits = Mutex::new([0usize; 2]);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let Some((i, mut case)) = queue.lock().unwrap().pop() else { break };
                    if let Some(setup) = case.setup.take() {
                        setup();
                    }
                    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
                    let r = finish(spawn(&args, &[]), Duration::from_secs(90));
                    if let Some(problem) = check(&case, &r) {
                        failures.lock().unwrap().push(format!("case {i} ({}): {problem}", case.what));
                    } else {
                        exits.lock().unwrap()[(r.code == 1) as usize] += 1;
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let [ok, refused] = exits.into_inner().unwrap();
    println!(
        "{total} cases in {:.0} s: {ok} ran, {refused} refused, {} failed",
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(
        ok > 0 && refused > total / 2,
        "{ok} ran, {refused} refused: the mutations are not reaching the checks"
    );
}

/// --dataset fashion-mnist --data DATA with a fresh --out: one epoch of 2 steps.
fn out_args(data: &str, dir: &Path, i: usize) -> Vec<String> {
    let out: PathBuf = dir.join(format!("out{i}"));
    [
        "--dataset",
        "fashion-mnist",
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--fp-epochs",
        "0",
        "--batch-size",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

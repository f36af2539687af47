//! Running the real `tern` binary: exit code or signal, stdout, stderr (without the Vulkan
//! loader's XDG_RUNTIME_DIR notices), environment, a time limit; and the one-line error check.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Run {
    /// Exit code; -1 when the process ended by a signal or was killed at the time limit.
    pub code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    /// stderr without the Vulkan loader's XDG_RUNTIME_DIR notices.
    pub stderr: String,
}

pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern"));
    c.args(args).env_remove("TERN_FAULT").env("RUST_BACKTRACE", "1").envs(env.iter().copied());
    c
}

/// Start `tern` with piped output (read it with `finish`).
pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    command(args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start tern")
}

/// Wait for `child` (killing it after `limit`) and collect its output.
pub fn finish(mut child: Child, limit: Duration) -> Run {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // Drain the pipes on threads so a chatty process cannot block on a full pipe. Stdout may be
    // elsewhere (a closed pipe, /dev/full): then there is none to read.
    let out = child.stdout.take();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut out) = out {
            let _ = out.read_to_end(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for tern") {
            break s;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for tern");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&err.join().unwrap())
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n");
    Run {
        code: status.code().unwrap_or(-1),
        signal: status.signal(),
        timed_out,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into(),
        stderr,
    }
}

/// Run `tern` to the end (at most 5 minutes).
pub fn tern(args: &[&str]) -> Run {
    tern_env(args, &[])
}

pub fn tern_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    finish(spawn(args, env), Duration::from_secs(300))
}

/// Exit code 1 and exactly one stderr line, `error: ...` containing every `needle`.
#[track_caller]
pub fn assert_fails(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 1, "expected exit code 1, got {} (signal {:?}): {}", r.code, r.signal, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "expected one error line, got:\n{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "'{n}' not in: {}", r.stderr);
    }
}

/// `tern train` on a Fashion-MNIST-format directory: 1 epoch, no warm-up, batch 32 unless
/// `extra` gives --epochs, --fp-epochs or --batch-size.
pub fn train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--dataset",
        "fashion-mnist",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for (flag, value) in [("--epochs", "1"), ("--fp-epochs", "0"), ("--batch-size", "32")] {
        if !extra.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}="))) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

pub fn train_tiny(data: &Path, out: &Path, extra: &[&str]) -> Run {
    tern(&train_args(data, out, extra))
}

/// Send `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: i32) {
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0, "kill({pid}, {signal})");
}

/// Shared inputs for one test binary, made once: a Fashion-MNIST-format directory (64 training,
/// 32 test images), a run trained on it for one TTQ epoch, and its packed export.
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub data: std::path::PathBuf,
    pub run: std::path::PathBuf,
    /// run/last.safetensors
    pub ckpt: std::path::PathBuf,
    pub packed: std::path::PathBuf,
    /// A PNG the models classify.
    pub image: std::path::PathBuf,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = crate::common::tiny_fashion(&tmp.path().join("data"), 64, 32);
        let run = tmp.path().join("run");
        let r = train_tiny(&data, &run, &[]);
        assert_eq!(r.code, 0, "fixture training failed: {}", r.stderr);
        let ckpt = run.join("last.safetensors");
        let packed = tmp.path().join("model.tern.safetensors");
        let r = tern(&["export", "--model", ckpt.to_str().unwrap(), "--out", packed.to_str().unwrap()]);
        assert_eq!(r.code, 0, "fixture export failed: {}", r.stderr);
        let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/images/pattern2.png");
        Fixture { _tmp: tmp, data, run, ckpt, packed, image }
    })
}

/// `tern eval` of `model` on the fixture's data.
pub fn eval(model: &Path) -> Run {
    eval_with(model, &[])
}

/// `tern eval` of `model` on the fixture's data with `extra` flags.
pub fn eval_with(model: &Path, extra: &[&str]) -> Run {
    let f = fixture();
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--data",
        f.data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tern(&args)
}

/// `tern classify` of the fixture's image with `model`.
pub fn classify(model: &Path) -> Run {
    tern(&["classify", "--model", model.to_str().unwrap(), fixture().image.to_str().unwrap()])
}

/// A safetensors file's tensors (name, dtype, shape, bytes) and metadata, to edit and rewrite.
pub struct Tensors {
    pub tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    pub metadata: std::collections::HashMap<String, String>,
}

impl Tensors {
    pub fn read(path: &Path) -> Tensors {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Tensors { tensors, metadata: header.metadata().clone().unwrap_or_default() }
    }

    pub fn write(&self, path: &Path) {
        let views: Vec<_> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(path, safetensors::serialize(views, Some(self.metadata.clone())).unwrap()).unwrap();
    }

    /// The bytes of tensor `name`.
    pub fn data(&mut self, name: &str) -> &mut Vec<u8> {
        &mut self.tensors.iter_mut().find(|t| t.0 == name).unwrap_or_else(|| panic!("no tensor {name}")).3
    }

    /// Set element `i` of the f32 tensor `name`.
    pub fn set_f32(&mut self, name: &str, i: usize, v: f32) {
        self.data(name)[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Edit the JSON metadata entry `key`.
    pub fn edit_json(&mut self, key: &str, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value = serde_json::from_str(&self.metadata[key]).unwrap();
        f(&mut v);
        self.metadata.insert(key.into(), v.to_string());
    }
}

/// Run `tern` with its standard output on `stdout` (a closed pipe, /dev/full).
pub fn tern_to(args: &[&str], env: &[(&str, &str)], stdout: impl Into<Stdio>) -> Run {
    let mut c = command(args, env);
    c.stdout(stdout).stderr(Stdio::piped());
    finish(c.spawn().expect("start tern"), Duration::from_secs(300))
}

/// A pipe whose reading end is closed: every write to it fails with a broken pipe.
pub fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

/// /dev/full, as a standard output: every write to it fails with "no space left on device".
pub fn full_disk() -> std::fs::File {
    std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full")
}

/// The training state stored in a checkpoint.
pub fn state(path: &Path) -> serde_json::Value {
    let ckpt = tern::internals::checkpoint::Checkpoint::load(path).unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(ckpt.training.as_deref().unwrap()).unwrap()
}

/// OUT/metrics.jsonl, one value per line (none when missing).
pub fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Run `tern` in the working directory `dir`.
pub fn tern_in(dir: &Path, args: &[&str]) -> Run {
    let mut c = command(args, &[]);
    c.current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    finish(c.spawn().expect("start tern"), Duration::from_secs(300))
}

//! Faults with the real binary (issue 10): two runs on one output directory, a kill between an
//! epoch's outputs, a panicking loader worker, a FIFO on the command line, SIGINT and SIGTERM;
//! and (issue 26) a closed or full standard output, a renamed --out, another run's checkpoint
//! in a run directory, a lost last.safetensors. Each checks the message (one line naming what
//! is at fault), the exit code, and that nothing was lost or overwritten. Kills are injected with the `TERN_FAULT` test hook (src/fault.rs).

mod common;
#[path = "common/process.rs"]
mod process;

use common::tiny_fashion;
use process::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tern::internals::checkpoint::Checkpoint;

const LIMIT: Duration = Duration::from_secs(300);

/// Wait until `f` holds (at most two minutes).
#[track_caller]
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid recorded in OUT/.tern-lock, once there.
fn lock_holder(out: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(out.join(tern::internals::train::LOCK)).ok()?;
    text.lines().next()?.trim().strip_prefix("pid ")?.parse().ok()
}

/// Hidden temporary files a write left in `out`.
fn temp_files(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

/// Point 1: two runs on one --out. Started together, exactly one runs and the other refuses,
/// naming the holder; started while the first runs, the second names its pid and changes
/// nothing; a killed holder's lock is released by the OS.
#[test]
fn one_run_per_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let slow = [("TERN_FAULT", "slow-steps")];
    let out = tmp.path().join("together");
    let a = spawn(&train_args(&data, &out, &["--epochs", "2", "--seed", "1"]), &slow);
    let b = spawn(&train_args(&data, &out, &["--epochs", "2", "--seed", "2"]), &slow);
    let (pids, runs) = ([a.id(), b.id()], [finish(a, LIMIT), finish(b, LIMIT)]);
    let winner = runs.iter().position(|r| r.code == 0).expect("neither run succeeded");
    let loser = &runs[1 - winner];
    assert_fails(loser, &["together is in use by another tern run (", "choose another --out"]);
    if !loser.stderr.contains("pid not yet recorded") {
        assert!(loser.stderr.contains(&format!("(pid {})", pids[winner])), "{}", loser.stderr);
    }
    let m = metrics(&out);
    assert_eq!(m.len(), 2, "metrics.jsonl holds another run's lines");
    let seed = state(&out.join("last.safetensors"))["config"]["seed"].as_u64().unwrap();
    assert_eq!(seed, winner as u64 + 1, "last.safetensors is not the winner's");
    assert_eq!(state(&out.join("best.safetensors"))["config"]["seed"].as_u64().unwrap(), seed);
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));

    // A second run started while the first runs names the first's pid and writes nothing.
    let out = tmp.path().join("apart");
    let a = spawn(&train_args(&data, &out, &["--epochs", "2"]), &slow);
    let pid = a.id();
    wait_for("the first run's lock", || lock_holder(&out) == Some(pid));
    let r = train_tiny(&data, &out, &["--seed", "5"]);
    assert_fails(&r, &[&format!("apart is in use by another tern run (pid {pid})")]);
    let r = tern(&["train", "--resume", out.to_str().unwrap()]);
    assert_fails(&r, &[&format!("apart is in use by another tern run (pid {pid})")]);
    let a = finish(a, LIMIT);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(metrics(&out).len(), 2);
    assert_eq!(state(&out.join("last.safetensors"))["config"]["seed"], 0);

    // A holder killed with SIGKILL never blocks the next run.
    let out = tmp.path().join("killed");
    let a = spawn(&train_args(&data, &out, &["--epochs", "2"]), &slow);
    let pid = a.id();
    wait_for("the run's lock", || lock_holder(&out) == Some(pid));
    send_signal(pid, libc::SIGKILL);
    assert_eq!(finish(a, LIMIT).signal, Some(libc::SIGKILL));
    let r = train_tiny(&data, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(metrics(&out).len(), 1);
}

/// The names of the tensors two checkpoints do not share exactly (empty: the same weights).
fn differing(a: &Path, b: &Path) -> Vec<String> {
    let (a, b) = (Checkpoint::load(a).unwrap(), Checkpoint::load(b).unwrap());
    let mut names: Vec<String> = a.tensors.iter().chain(&b.tensors).map(|t| t.name.clone()).collect();
    names.sort();
    names.dedup();
    let get = |c: &Checkpoint, n: &str| c.tensors.iter().find(|t| t.name == n).cloned();
    names.into_iter().filter(|n| get(&a, n) != get(&b, n)).collect()
}

/// Point 2: a kill at each step of an epoch's commit. `--resume` then restores what is missing
/// (the metrics line, best.safetensors, the curves) or redoes the epoch, removes stale temporary
/// files, and ends with the uninterrupted run's outputs.
#[test]
fn a_kill_between_an_epochs_outputs_is_repaired_by_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let args = |out: &Path| -> Vec<String> {
        train_args(&data, out, &["--epochs", "3", "--fp-epochs", "1"]).into_iter().map(String::from).collect()
    };
    let reference = tmp.path().join("reference");
    let r = tern(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = metrics(&reference);
    // The last epoch that set a new best: a kill right after its last.safetensors leaves
    // best.safetensors behind.
    let mut top = -1.0;
    let mut last_best = 1;
    for m in &want {
        if m["test_accuracy"].as_f64().unwrap() > top {
            top = m["test_accuracy"].as_f64().unwrap();
            last_best = m["epoch"].as_u64().unwrap();
        }
    }
    let best_epoch = state(&reference.join("best.safetensors"))["epoch"].clone();
    let cases: Vec<(String, usize, &str)> = vec![
        // (fault, epochs in last.safetensors after the kill, stale temporary file)
        (format!("after-last-checkpoint@{last_best}"), last_best as usize, ""),
        ("after-last-checkpoint@3".into(), 3, ""),
        ("after-best-checkpoint@1".into(), 1, ""),
        ("after-metrics@2".into(), 2, ""),
        ("before-rename:metrics.jsonl".into(), 1, ".metrics.jsonl.tmp"),
        ("before-rename:best.safetensors".into(), 1, ".best.safetensors.tmp"),
    ];
    for (i, (fault, epochs, stale)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        let a = args(&out);
        let r = tern_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[("TERN_FAULT", fault)]);
        assert_eq!(r.signal, Some(libc::SIGABRT), "{fault}: {}", r.stderr);
        assert_eq!(state(&out.join("last.safetensors"))["epoch"], *epochs, "{fault}");
        assert!(metrics(&out).len() <= *epochs, "{fault}");
        if !stale.is_empty() {
            assert!(out.join(stale).exists(), "{fault}: no {stale}");
        }
        let r = tern(&["train", "--resume", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{fault}: {}", r.stderr);
        let got = metrics(&out);
        assert_eq!(got.len(), 3, "{fault}");
        for (x, y) in want.iter().zip(&got) {
            for key in ["epoch", "quant", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]
            {
                assert_eq!(x[key], y[key], "{fault}: epoch {} {key}", x["epoch"]);
            }
        }
        assert_eq!(state(&out.join("best.safetensors"))["epoch"], best_epoch, "{fault}: best.safetensors");
        for f in ["best.safetensors", "last.safetensors"] {
            let d = differing(&out.join(f), &reference.join(f));
            assert!(d.is_empty(), "{fault}: {f} differs from the uninterrupted run's in {d:?}");
        }
        assert!(out.join("curves.png").metadata().unwrap().len() > 1000, "{fault}: curves.png");
        assert!(temp_files(&out).is_empty(), "{fault}: {:?}", temp_files(&out));
    }
    // A kill before the first checkpoint's rename leaves nothing to resume: --resume says so,
    // and a new run in the same directory starts cleanly.
    let out = tmp.path().join("first");
    let a = args(&out);
    let r = tern_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("TERN_FAULT", "before-rename:last.safetensors")],
    );
    assert_eq!(r.signal, Some(libc::SIGABRT), "{}", r.stderr);
    assert_fails(
        &tern(&["train", "--resume", out.to_str().unwrap()]),
        &["no last.safetensors to resume from"],
    );
    let r = tern(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(metrics(&out).len(), 3);
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
}

/// Point 3: a loader worker that panics stops eval and training with its error (exit 1, one
/// line); nothing is written.
#[test]
fn a_panicking_loader_worker_stops_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let fault = [("TERN_FAULT", "loader-panic")];
    let run = tmp.path().join("run");
    let r = train_tiny(&data, &run, &["--epochs", "2", "--stop-after", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ckpt = run.join("last.safetensors");
    let (d, c) = (data.to_str().unwrap(), ckpt.to_str().unwrap());
    let r = tern_env(
        &["eval", "--model", c, "--dataset", "fashion-mnist", "--data", d, "--batch-size", "8"],
        &fault,
    );
    assert_fails(&r, &["data loader worker", "(batch 2) failed: injected fault"]);
    assert!(!r.stdout.contains("test accuracy"), "{}", r.stdout);
    let out = tmp.path().join("fresh");
    let r = tern_env(&train_args(&data, &out, &[]), &fault);
    assert_fails(&r, &["data loader worker", "failed: injected fault"]);
    assert!(!out.exists(), "a failed run left its output directory");
    let files = ["last.safetensors", "best.safetensors", "metrics.jsonl", "curves.png"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(run.join(f)).unwrap()).collect();
    let r = tern_env(&["train", "--resume", run.to_str().unwrap()], &fault);
    assert_fails(&r, &["data loader worker", "failed: injected fault"]);
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(run.join(f)).unwrap(), b, "{f} changed");
    }
}

fn mkfifo(path: &Path) -> PathBuf {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    path.to_path_buf()
}

/// Point 8: a FIFO named as an image, a model, an --init file or a dataset file is refused
/// at once instead of blocking.
#[test]
fn a_fifo_on_the_command_line_is_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = mkfifo(&tmp.path().join("images.fifo"));
    let (m, p) = (f.ckpt.to_str().unwrap(), fifo.to_str().unwrap());
    let limit = Duration::from_secs(120);
    let quick = |args: &[&str]| {
        let r = finish(spawn(args, &[]), limit);
        assert!(!r.timed_out, "{args:?} blocked");
        r
    };
    let refused = ["images.fifo: not a regular file (a FIFO, socket or device)"];
    assert_fails(&quick(&["classify", "--model", m, p]), &refused);
    assert_fails(&quick(&["classify", "--model", p, f.image.to_str().unwrap()]), &refused);
    assert_fails(&quick(&["eval", "--model", p]), &refused);
    assert_fails(
        &quick(&["export", "--model", p, "--out", tmp.path().join("x").to_str().unwrap()]),
        &refused,
    );
    let out = tmp.path().join("run");
    assert_fails(&quick(&train_args(&f.data, &out, &["--init", p])), &refused);
    // A dataset file that is a FIFO.
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    mkfifo(&data.join("t10k-labels-idx1-ubyte"));
    let r = quick(&train_args(&data, &out, &[]));
    assert_fails(&r, &["t10k-labels-idx1-ubyte: not a regular file"]);
    assert!(!out.exists());
}

/// Point 11: SIGINT or SIGTERM during training stops at the next step, keeps the last
/// checkpoint, says how to resume and exits with 130 or 143; the run then resumes to the end.
#[test]
fn sigint_and_sigterm_keep_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let slow = [("TERN_FAULT", "slow-steps")];
    let out = tmp.path().join("int");
    let a = spawn(&train_args(&data, &out, &["--epochs", "3"]), &slow);
    let pid = a.id();
    wait_for("epoch 1's outputs", || out.join("curves.png").exists());
    let saved = std::fs::read(out.join("last.safetensors")).unwrap();
    send_signal(pid, libc::SIGINT);
    let r = finish(a, LIMIT);
    assert_eq!(r.code, 130, "{}", r.stderr);
    let o = out.display();
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    for needle in [
        "error: interrupted by SIGINT ",
        &format!("; {o}/last.safetensors (epoch 1) is kept: continue with `tern train --resume {o}`"),
    ] {
        assert!(r.stderr.contains(needle), "'{needle}' not in {}", r.stderr);
    }
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), saved, "the last checkpoint changed");
    assert_eq!(metrics(&out).len(), 1);
    let r = tern(&["train", "--resume", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(metrics(&out).len(), 3);

    // SIGTERM before the first epoch ends: nothing to keep, nothing left behind.
    let out = tmp.path().join("term");
    let a = spawn(&train_args(&data, &out, &["--epochs", "3"]), &slow);
    let pid = a.id();
    wait_for("the run's lock", || lock_holder(&out) == Some(pid));
    send_signal(pid, libc::SIGTERM);
    let r = finish(a, LIMIT);
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: interrupted by SIGTERM in epoch 1/3 (after step "), "{}", r.stderr);
    assert!(
        r.stderr.ends_with("no epoch was complete, nothing is saved: start the run again"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "the stopped run left its output directory");
}

/// Point 11: a second SIGINT exits at once, while the first is still stopping the run (the
/// slow-steps hook makes stopping take two seconds); the last checkpoint stays loadable.
#[test]
fn a_second_sigint_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let out = tmp.path().join("run");
    let a = spawn(&train_args(&data, &out, &["--epochs", "3"]), &[("TERN_FAULT", "slow-steps")]);
    let pid = a.id();
    wait_for("epoch 1's outputs", || out.join("curves.png").exists());
    send_signal(pid, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    let second = Instant::now();
    send_signal(pid, libc::SIGINT);
    let r = finish(a, LIMIT);
    let waited = second.elapsed();
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let o = out.display();
    let want = format!(
        "error: SIGINT again: stopped at once; {o}/last.safetensors (epoch 1) is kept: continue with `tern train --resume {o}`"
    );
    assert_eq!(r.stderr, want);
    assert!(waited < Duration::from_millis(1500), "took {waited:?} after the second signal");
    assert_eq!(state(&out.join("last.safetensors"))["epoch"], 1);
}

/// The run id a checkpoint's training state carries.
fn run_id(path: &Path) -> String {
    state(path)["run"].as_str().unwrap_or_else(|| panic!("{}: no run id", path.display())).to_string()
}

/// Issue 26, point 1: a command whose standard output is a closed pipe (`| head -1`) ends
/// quietly with 141 (128 + SIGPIPE) instead of panicking; one writing to a full disk fails
/// with one error line; `tern train` trains on when its log's pipe closes or its disk fills,
/// with one note on stderr.
#[test]
fn a_closed_or_full_stdout_ends_commands_quietly_and_training_goes_on() {
    let f = fixture();
    let (model, image) = (f.ckpt.to_str().unwrap(), f.image.to_str().unwrap());
    for args in [&["classify", "--model", model, image][..], &["devices"], &["check"]] {
        let r = tern_to(args, &[], closed_pipe());
        assert_eq!((r.code, r.stderr.as_str()), (141, ""), "{args:?}");
        let r = tern_to(args, &[], full_disk());
        assert_fails(&r, &["cannot write to standard output (No space left on device"]);
    }
    // `tern train … | head -1`: the pipe closes after the first line, during the first epoch.
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let out = tmp.path().join("head");
    let mut child = spawn(&train_args(&data, &out, &["--epochs", "2"]), &[]);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut first)
        .unwrap();
    assert!(first.starts_with("training small-cnn"), "{first}");
    drop(child.stdout.take());
    let r = finish(child, LIMIT);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("note: standard output is gone (Broken pipe"), "{}", r.stderr);
    assert!(r.stderr.contains("training goes on"), "{}", r.stderr);
    assert_eq!(metrics(&out).len(), 2);
    assert_eq!(state(&out.join("last.safetensors"))["epoch"], 2);
    // `tern train … > /dev/full`.
    let out = tmp.path().join("full");
    let r = tern_to(&train_args(&data, &out, &[]), &[], full_disk());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.starts_with("note: standard output is gone (No space left on device"), "{}", r.stderr);
    assert_eq!(metrics(&out).len(), 1);
}

/// Issue 26, point 2: --out renamed while its run goes on. A new run on the old name is a new
/// directory; the first run notices at its next commit that its path no longer leads to the
/// directory it locked, stops with one line naming where its checkpoint went, and writes
/// nothing into the new run's directory; it resumes from where it moved.
#[test]
fn a_run_whose_out_is_renamed_stops_and_never_writes_into_the_new_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let (out, moved) = (tmp.path().join("run"), tmp.path().join("moved"));
    let a =
        spawn(&train_args(&data, &out, &["--epochs", "3", "--seed", "1"]), &[("TERN_FAULT", "slow-steps")]);
    wait_for("epoch 1's outputs", || out.join("curves.png").exists());
    std::fs::rename(&out, &moved).unwrap();
    let b = train_tiny(&data, &out, &["--seed", "2"]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let a = finish(a, LIMIT);
    let (o, m) = (out.display(), moved.display());
    assert_fails(
        &a,
        &[
            &format!(
                "{o} is no longer the directory this run locked (it was moved to {m} while the run went on)"
            ),
            "stopped before writing epoch 2's outputs, so nothing went into another directory",
            &format!(
                "this run's last.safetensors (epoch 1) is in {m}: continue it with `tern train --resume {m}`"
            ),
        ],
    );
    // Each directory holds one run.
    assert_eq!(state(&moved.join("last.safetensors"))["config"]["seed"], 1);
    assert_eq!(state(&out.join("last.safetensors"))["config"]["seed"], 2);
    assert_eq!(metrics(&moved).len(), 1);
    assert_eq!(metrics(&out).len(), 1);
    let (first, second) = (run_id(&moved.join("last.safetensors")), run_id(&out.join("last.safetensors")));
    assert_ne!(first, second);
    assert_eq!(run_id(&moved.join("best.safetensors")), first);
    assert_eq!(run_id(&out.join("best.safetensors")), second);
    let lock = std::fs::read_to_string(out.join(tern::internals::train::LOCK)).unwrap();
    assert!(lock.ends_with(&format!("\nrun {second}\n")), "{lock}");
    assert!(temp_files(&moved).is_empty() && temp_files(&out).is_empty());
    // The moved run continues where it is now.
    let r = tern(&["train", "--resume", moved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(metrics(&moved).len(), 3);
    assert_eq!(run_id(&moved.join("last.safetensors")), first);
}

/// Issue 26, point 3: another run's last.safetensors copied into a run directory. --resume
/// continues the run the checkpoint belongs to, and the directory's best.safetensors, which
/// belongs to the other run, is moved aside (never kept as this run's best, never deleted),
/// then rebuilt from last.safetensors when that is the best epoch; checkpoints of older
/// versions, without a run id, resume as their own.
#[test]
fn resume_moves_a_foreign_best_aside_and_keeps_best_in_step_with_last() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(train_tiny(&data, &a, &["--seed", "1"]).code, 0);
    let r = train_tiny(&data, &b, &["--epochs", "2", "--stop-after", "1", "--seed", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (a_run, b_run) = (run_id(&a.join("last.safetensors")), run_id(&b.join("last.safetensors")));
    let a_best = std::fs::read(a.join("best.safetensors")).unwrap();
    std::fs::copy(b.join("last.safetensors"), a.join("last.safetensors")).unwrap();
    let r = tern(&["train", "--resume", a.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let aside = a.join(format!("best.run-{a_run}-epoch-1.safetensors"));
    let want = format!(
        "note: {}/best.safetensors is epoch 1 of another run (run {a_run}), not of the run in last.safetensors; moved it to {}",
        a.display(),
        aside.display()
    );
    assert_eq!(r.stderr, want);
    assert_eq!(std::fs::read(&aside).unwrap(), a_best, "the other run's best changed");
    let (last, best) = (state(&a.join("last.safetensors")), state(&a.join("best.safetensors")));
    assert_eq!((last["run"].as_str(), best["run"].as_str()), (Some(b_run.as_str()), Some(b_run.as_str())));
    let e = best["epoch"].as_u64().unwrap() as usize;
    assert_eq!(best["history"].as_array().unwrap()[..], last["history"].as_array().unwrap()[..e]);
    assert_eq!(metrics(&a).len(), 2);

    // The best epoch is before the last one: no file holds it, and the other run's best is
    // still not kept as this run's.
    let c = tmp.path().join("c");
    std::fs::create_dir(&c).unwrap();
    let mut t = Tensors::read(&a.join("last.safetensors"));
    t.edit_json("training", |s| {
        s["history"][0]["test_accuracy"] = serde_json::json!(1.0);
        s["best_accuracy"] = serde_json::json!(1.0);
    });
    t.write(&c.join("last.safetensors"));
    std::fs::write(c.join("best.safetensors"), &a_best).unwrap();
    let r = tern(&["train", "--resume", c.to_str().unwrap(), "--epochs", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("best.safetensors is epoch 1 of another run"), "{}", r.stderr);
    assert!(r.stderr.ends_with("this run's best epoch (1) is in no file now, and best.safetensors is written again when an epoch beats it"), "{}", r.stderr);
    assert!(!c.join("best.safetensors").exists(), "a best.safetensors that is not this run's best");
    assert_eq!(std::fs::read(c.join(format!("best.run-{a_run}-epoch-1.safetensors"))).unwrap(), a_best);

    // Checkpoints without a run id (older versions) are the run's own, and it takes one.
    for f in ["last.safetensors", "best.safetensors"] {
        let mut t = Tensors::read(&b.join(f));
        t.edit_json("training", |s| {
            s.as_object_mut().unwrap().remove("run");
        });
        t.write(&b.join(f));
    }
    let r = tern(&["train", "--resume", b.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "", "an older version's best.safetensors was not taken as the run's own");
    let run = run_id(&b.join("last.safetensors"));
    assert_ne!(run, b_run);
    let best = state(&b.join("best.safetensors"));
    assert!(best["run"].is_null() || best["run"] == run.as_str(), "{best}");
}

/// Issue 26, point 5: a run whose last.safetensors is lost. Starting it again says how to
/// resume or start over; --resume continues from best.safetensors (the epochs after it are
/// trained again); --restart starts a new run there, replacing the old one's outputs; with no
/// checkpoint at all, both messages name --restart.
#[test]
fn a_lost_last_checkpoint_resumes_from_best_and_restart_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fashion(&tmp.path().join("data"), 64, 32);
    let out = tmp.path().join("run");
    let o = out.display();
    let args = |extra: &[&'static str]| -> Vec<String> {
        train_args(&data, &out, extra).into_iter().map(String::from).collect()
    };
    let run = |args: Vec<String>| tern(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run(args(&["--epochs", "2"])).code, 0);
    let old = run_id(&out.join("last.safetensors"));
    let best_epoch = state(&out.join("best.safetensors"))["epoch"].as_u64().unwrap();
    std::fs::remove_file(out.join("last.safetensors")).unwrap();
    assert_fails(
        &run(args(&["--epochs", "2"])),
        &[
            &format!("{o} already holds a run whose last.safetensors is missing"),
            &format!("resume it from its best.safetensors with `tern train --resume {o}`"),
            "start it over with --restart",
        ],
    );
    let r = tern(&["train", "--resume", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "note: {o}/last.safetensors is missing: resuming from {o}/best.safetensors (epoch {best_epoch} of 2); the epochs after it are trained again"
        )
    );
    assert_eq!(state(&out.join("last.safetensors"))["epoch"], 2);
    assert_eq!(run_id(&out.join("last.safetensors")), old);
    assert_eq!(metrics(&out).len(), 2);

    // --restart replaces the run.
    let r = run(args(&["--restart", "--seed", "3"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let new = run_id(&out.join("last.safetensors"));
    assert_ne!(new, old);
    assert_eq!(run_id(&out.join("best.safetensors")), new);
    assert_eq!(state(&out.join("last.safetensors"))["config"]["seed"], 3);
    assert_eq!(metrics(&out).len(), 1);

    // Outputs without any checkpoint: only --restart helps, and both messages say so.
    for f in ["last.safetensors", "best.safetensors"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    assert_fails(
        &tern(&["train", "--resume", out.to_str().unwrap()]),
        &[
            &format!("{o}: no last.safetensors or best.safetensors to resume from"),
            &format!("start the run over with `tern train --restart --out {o}`"),
        ],
    );
    assert_fails(
        &run(args(&[])),
        &[&format!(
            "{o} already holds a run's outputs but no checkpoint to resume: start it over with --restart"
        )],
    );
    assert_eq!(run(args(&["--restart"])).code, 0);
    assert_eq!(metrics(&out).len(), 1);
}

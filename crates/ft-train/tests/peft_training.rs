//! Training parity with PEFT + transformers' `Trainer`: from the same freshly initialised
//! adapter (non-zero LoRA B), on the same batches in the same order, dropout 0, ft's loop
//! reproduces every step's loss and the final adapter weights (`tests/fixtures/peft/train`, made
//! by `xtask/python/fixtures_peft.py`). Cases: LoRA on tiny GPT-2 (causal LM; also with batch 2 ×
//! gradient accumulation 2, where transformers counts the step's label tokens), prompt tuning on
//! tiny GPT-2, LoRA with `modules_to_save` on a tiny DistilBERT sequence classifier. The same for
//! bottleneck adapters with their heads against AdapterHub's `adapters` library and its trainer
//! (`tests/fixtures/adapters/train`, made by `xtask/python/fixtures_adapters.py`): Pfeiffer on
//! tiny BERT, Houlsby on tiny DistilBERT.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use ft_data::dataset::{Column, Dataset, Field};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::peft::{PeftBase, PeftModel};
use ft_train::args::{IntervalStrategy, TrainingArguments};
use ft_train::fit::{FitOptions, NoCallbacks, fit};
use ft_train::optim::adamw;
use ft_train::peft::PeftStore;
use ft_train::task::causal::{CausalExamples, CausalLmTask};
use ft_train::task::text::{SequenceClassificationTask, TextExamples};
use ft_train::task::{Evaluator, Split, TrainTask};
use serde_json::Value;

/// Feeds the inner task's training rows in dataset order (as the reference's
/// `SequentialSampler`): the loop's batch of positions `p..p+k` of epoch e's permutation becomes
/// rows `p..p+k`. Records every training loss as transformers reports it (with gradient
/// accumulation: the micro-batch's loss times its weight in the step).
struct InOrder<T> {
    inner: T,
    n: usize,
    batch_size: usize,
    seed: u64,
    calls: Cell<usize>,
    losses: RefCell<Vec<f64>>,
}

impl<T: TrainTask> InOrder<T> {
    fn seq(&self, chunk: &[usize]) -> Vec<usize> {
        let epoch = self.calls.get().saturating_sub(1) / self.n.div_ceil(self.batch_size);
        let perm = ft_data::rng::permutation(self.n, self.seed + epoch as u64);
        let p = perm.iter().position(|&i| i == chunk[0]).unwrap_or(0);
        (p..p + chunk.len()).collect()
    }
}

impl<T: TrainTask> TrainTask for InOrder<T> {
    type Model = T::Model;
    type Batch = T::Batch;
    type Outputs = T::Outputs;

    fn len(&self, split: Split) -> usize {
        self.inner.len(split)
    }
    fn lengths(&self) -> Vec<usize> {
        self.inner.lengths()
    }
    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> ft_train::Result<T::Batch> {
        self.calls.set(self.calls.get() + 1);
        self.inner.batch(split, &self.seq(indices), device)
    }
    fn forward(&self, model: &T::Model, batch: &T::Batch) -> ft_train::Result<(Tensor<1>, T::Outputs)> {
        self.inner.forward(model, batch)
    }
    fn train_loss(&self, model: &T::Model, batch: &T::Batch) -> ft_train::Result<Tensor<1>> {
        let loss = self.inner.train_loss(model, batch)?;
        let v: f32 = loss.clone().into_data().iter::<f32>().next().unwrap_or(f32::NAN);
        self.losses.borrow_mut().push(v as f64);
        Ok(loss)
    }
    fn micro_batch_weight(&self, micro: &[usize], step: &[&[usize]]) -> Option<f64> {
        let micro = self.seq(micro);
        let step: Vec<Vec<usize>> = step.iter().map(|c| self.seq(c)).collect();
        let refs: Vec<&[usize]> = step.iter().map(Vec::as_slice).collect();
        let w = self.inner.micro_batch_weight(&micro, &refs);
        if let (Some(w), Some(last)) = (w, self.losses.borrow_mut().last_mut()) {
            *last *= w;
        }
        w
    }
    fn evaluator(&self) -> Box<dyn Evaluator<T::Outputs>> {
        self.inner.evaluator()
    }
    fn metric_names(&self) -> Vec<String> {
        self.inner.metric_names()
    }
}

/// The reference's files: `peft` (PEFT) or `adapters` (the `adapters` library).
#[derive(Clone, Copy)]
struct Reference {
    /// The fixture folder.
    root: &'static str,
    /// The adapter's name in the files (`None`: the case's name).
    adapter: Option<&'static str>,
    /// The weights files to compare after training.
    weights: &'static [&'static str],
}

const PEFT: Reference = Reference { root: "peft", adapter: Some("default"), weights: &["adapter_model.safetensors"] };

impl Reference {
    fn adapter<'a>(&self, case: &'a str) -> &'a str {
        self.adapter.unwrap_or(case)
    }
}

fn meta(r: Reference) -> Value {
    serde_json::from_str(&std::fs::read_to_string(support::fixture(&format!("{}/expected.json", r.root))).unwrap())
        .unwrap()
}

/// The fixture model with every dropout probability 0, in a temporary folder.
fn without_dropout(name: &str, tmp: &Path) -> PathBuf {
    let src = support::fixture(&format!("models/{name}"));
    let dst = tmp.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let mut config: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    for key in [
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "dropout",
        "attention_dropout",
        "seq_classif_dropout",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "classifier_dropout",
        "qa_dropout",
    ] {
        if config.contains_key(key) {
            config.insert(key.into(), serde_json::json!(0.0));
        }
    }
    std::fs::write(dst.join("config.json"), serde_json::to_string(&Value::Object(config)).unwrap()).unwrap();
    dst
}

fn rows(r: Reference, name: &str) -> Dataset {
    let rows: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(support::fixture(&format!("{}/train/{name}/rows.json", r.root))).unwrap(),
    )
    .unwrap();
    let ids: Vec<Vec<i64>> = rows.iter().map(|r| serde_json::from_value(r["input_ids"].clone()).unwrap()).collect();
    let mut fields = vec![Field::new("input_ids", Column::IntList(ids))];
    if rows[0].get("labels").is_some() {
        fields.push(Field::new("labels", Column::Int(rows.iter().map(|r| r["labels"].as_i64().unwrap()).collect())));
    }
    Dataset::new(name, fields).unwrap()
}

fn args(out: &Path, rec: &Value) -> TrainingArguments {
    TrainingArguments {
        output_dir: out.to_path_buf(),
        per_device_train_batch_size: rec["batch_size"].as_u64().unwrap() as usize,
        gradient_accumulation_steps: rec["gradient_accumulation_steps"].as_u64().unwrap_or(1) as usize,
        max_steps: rec["steps"].as_i64().unwrap(),
        learning_rate: rec["learning_rate"].as_f64().unwrap(),
        eval_strategy: IntervalStrategy::No,
        save_strategy: IntervalStrategy::No,
        logging_steps: 1,
        seed: 0,
        ..Default::default()
    }
}

/// Trains `model` with `task` as the reference did and compares losses and the final adapter.
fn check<M, T>(r: Reference, name: &str, model: PeftModel<M>, task: T, tmp: &Path)
where
    M: PeftBase,
    T: TrainTask<Model = PeftModel<M>>,
{
    let rec = &meta(r)["training"][name];
    let args = args(&tmp.join("out"), rec);
    let n = task.len(Split::Train);
    let task = InOrder {
        inner: task,
        n,
        batch_size: args.per_device_train_batch_size,
        seed: args.seed,
        calls: Cell::new(0),
        losses: RefCell::new(Vec::new()),
    };
    let optimizer = adamw(&args, &model).unwrap();
    let options = FitOptions {
        resume: false,
        progress: false,
        callbacks: &mut NoCallbacks,
        optimizer,
        setup_seconds: 0.0,
        pitfalls: Vec::new(),
        frozen_params: 0,
    };
    let outcome = fit(&task, model, &PeftStore, &args, options, &Device::flex()).unwrap();
    let want: Vec<f64> = serde_json::from_value(rec["losses"].clone()).unwrap();
    let got = task.losses.borrow().clone();
    assert_eq!(got.len(), want.len(), "{name}: micro-batches");
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("{name}: {} steps, max |Δ loss| vs the reference ({}) = {worst:.2e}", got.len(), r.root);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-4, "{name} step {}: ft {a} vs PEFT {b}", i + 1);
    }
    // The final adapter, tensor by tensor.
    let saved = tmp.join("final");
    outcome.model.clone().save_adapter(r.adapter(name), &saved).unwrap();
    let mut worst = 0.0f64;
    for file in r.weights {
        let ours = support::read_safetensors(&saved.join(file));
        let theirs = support::read_safetensors(&support::fixture(&format!("{}/train/{name}/final/{file}", r.root)));
        let mut names: Vec<&String> = theirs.keys().collect();
        names.sort();
        assert_eq!(ours.len(), theirs.len(), "{name}: {names:?}");
        for n in names {
            let (a, b) = (&ours[n], &theirs[n]);
            assert_eq!(a.0, b.0, "{name}: {n}");
            worst = a.1.iter().zip(&b.1).map(|(x, y)| (x - y).abs()).fold(worst, f64::max);
        }
    }
    eprintln!("{name}: final adapter max |Δ| = {worst:.2e}");
    assert!(worst <= 1e-4, "{name}: final adapter differs by {worst}");
}

fn peft_model<M: PeftBase>(r: Reference, base: M, name: &str) -> PeftModel<M> {
    let mut m = PeftModel::new(base);
    m.load_adapter(&support::fixture(&format!("{}/train/{name}/init", r.root)), r.adapter(name)).unwrap();
    m.freeze_base()
}

#[test]
fn causal_lm_adapters_train_as_peft_and_the_trainer() {
    for name in ["gpt2-lora", "gpt2-lora-accum", "gpt2-prompt"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = without_dropout("tiny-gpt2", tmp.path());
        let ad = Device::flex().autodiff();
        let base = load(dir.to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &ad)
            .unwrap()
            .into_causal_lm()
            .unwrap()
            .model;
        let examples = CausalExamples { train: rows(PEFT, name), eval: None, pad_id: 50256, flops_per_token: 0.0 };
        check(PEFT, name, peft_model(PEFT, base, name), CausalLmTask::new(examples), tmp.path());
    }
}

#[test]
fn seq_cls_lora_trains_as_peft_and_the_trainer() {
    let name = "distilbert-lora";
    let tmp = tempfile::tempdir().unwrap();
    let dir = without_dropout("tiny-distilbert-seqcls", tmp.path());
    let ad = Device::flex().autodiff();
    let base = load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &ad)
        .unwrap()
        .into_sequence_classifier()
        .unwrap()
        .model;
    let examples = TextExamples { train: rows(PEFT, name), eval: None, pad_id: 0, flops_per_token: 0.0 };
    check(PEFT, name, peft_model(PEFT, base, name), SequenceClassificationTask::new(examples), tmp.path());
}

/// Bottleneck adapters and their heads, from the library's freshly initialised ones, against
/// the `adapters` library's trainer: every step's loss and the final adapter and head.
#[test]
fn bottleneck_adapters_train_as_the_adapters_library() {
    const ADAPTERS: Reference =
        Reference { root: "adapters", adapter: None, weights: &["adapter.safetensors", "model_head.safetensors"] };
    for (name, model) in [("bert-pfeiffer", "tiny-bert"), ("distilbert-houlsby", "tiny-distilbert")] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = without_dropout(model, tmp.path());
        let ad = Device::flex().autodiff();
        let base = load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &ad)
            .unwrap()
            .into_sequence_classifier()
            .unwrap()
            .model;
        let examples = TextExamples { train: rows(ADAPTERS, name), eval: None, pad_id: 0, flops_per_token: 0.0 };
        check(ADAPTERS, name, peft_model(ADAPTERS, base, name), SequenceClassificationTask::new(examples), tmp.path());
    }
}

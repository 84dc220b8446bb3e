//! Run profiles: which models and data the notebook's sections use, and how the runs split the
//! data (the `[data]` section of their run files).

use std::path::Path;

use ft_train::run_config::DataSection;

/// Where a dataset comes from and how the runs split it.
#[derive(Debug, Clone)]
pub struct DataPlan {
    /// The dataset's name in the report.
    pub name: &'static str,
    /// The `[data]` section of the run files (without `max_length`, which is the section's).
    pub data: DataSection,
    /// Comments beside `[data]` keys in the written run files.
    pub comments: Vec<(&'static str, &'static str)>,
    /// `ft data inspect` calls of §3: `(split shown, arguments after `inspect`)`.
    pub inspect: Vec<(String, Vec<String>)>,
    /// The label column whose distribution §3 shows.
    pub label_column: &'static str,
    /// One sentence on where the data comes from.
    pub describe: String,
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A `[data]` section reading `source`'s `train`/`eval` splits, shuffled with seed 42.
fn data(source: String, train: &str, eval: &str, select: (usize, usize)) -> DataSection {
    DataSection {
        source,
        local_data: None,
        config: None,
        train_split: train.into(),
        eval_split: Some(eval.into()),
        train_select: Some(select.0),
        eval_skip: 0,
        eval_select: Some(select.1),
        shuffle_seed: Some(42),
        text_column: None,
        label_column: None,
        max_length: None,
        label_all_tokens: false,
        skip_invalid: false,
        image_column: None,
        image_size: None,
        resize_size: None,
        augment: None,
        crop_scale: None,
        crop_ratio: None,
        flip_probability: None,
        image_mean: None,
        image_std: None,
    }
}

/// Points `d` at a local folder read whole: its `train` split and `eval` split, no recipe, no
/// subsample, no shuffle (the task's own data, as exercise 4's and exercise 6's).
pub fn whole_folder(d: &mut DataSection, folder: &Path, eval: &str) {
    d.source = path_str(folder);
    d.local_data = None;
    d.config = None;
    d.train_split = "train".into();
    d.eval_split = Some(eval.into());
    d.train_select = None;
    d.eval_skip = 0;
    d.eval_select = None;
    d.shuffle_seed = None;
}

impl DataPlan {
    /// The notebook's own: a recipe (`ag_news`, `conll2003`), `shuffle(seed=42).select(range(n))`
    /// of the recipe's train and validation splits; with `local`, the recipe reads those files.
    pub fn recipe(
        name: &'static str,
        recipe: &str,
        local: Option<&Path>,
        sizes: (usize, usize),
        label_column: &'static str,
    ) -> Self {
        let mut d = data(recipe.to_string(), "train", "validation", sizes);
        d.local_data = local.map(Path::to_path_buf);
        let mut comments = vec![
            ("source", "the recipe of the notebook's load_dataset"),
            ("local_data", "the recipe reads these files instead of the Hub"),
            ("shuffle_seed", "split.shuffle(seed=42)"),
            ("train_select", ".select(range(n))"),
        ];
        if recipe == "ag_news" {
            comments.push(("eval_split", "the recipe maps AG News' validation to its test split, as the notebook"));
        }
        let mut base = vec![recipe.to_string()];
        if let Some(dir) = local {
            base.extend(["--data".into(), path_str(dir)]);
        }
        let inspect = ["train", "validation"]
            .iter()
            .map(|s| {
                let mut a = base.clone();
                a.extend(["--split".into(), s.to_string()]);
                (s.to_string(), a)
            })
            .collect();
        let describe = match local {
            Some(dir) => format!(
                "recipe `{recipe}` reading `{}`; train/validation shuffled with seed 42, first {} / {} rows",
                dir.display(),
                sizes.0,
                sizes.1
            ),
            None => format!(
                "recipe `{recipe}` from the Hub; train/validation shuffled with seed 42, first {} / {} rows (the notebook's subsample)",
                sizes.0, sizes.1
            ),
        };
        DataPlan { name, data: d, comments, inspect, label_column, describe }
    }

    /// AG News from a local `test.parquet` (the train split is not available offline): shuffled
    /// with seed 42, the first 2,000 rows train and the next 1,000 validate (`benches/runs`).
    pub fn ag_news_test_parquet(file: &Path) -> Self {
        let source = path_str(file);
        let mut d = data(source.clone(), "test", "test", (2000, 1000));
        d.eval_skip = 2000;
        DataPlan {
            name: "AG News",
            data: d,
            comments: vec![
                ("source", "AG News' test split (the train split is not staged locally)"),
                ("shuffle_seed", "shuffled with seed 42: rows 0..2000 train, 2000..3000 validate"),
            ],
            inspect: vec![("test".into(), vec![source, "--split".into(), "test".into()])],
            label_column: "label",
            describe: format!(
                "`{}` shuffled with seed 42: the first 2,000 rows train, the next 1,000 validate (as `benches/runs/agnews_minilm.toml`; the notebook trains on 2,000 rows of the 120,000-row train split, which is not staged locally)",
                file.display()
            ),
        }
    }

    /// CoNLL-2003 from a local folder with train and validation files.
    pub fn conll_dir(dir: &Path) -> Self {
        let source = path_str(dir);
        DataPlan {
            name: "CoNLL-2003",
            data: data(source.clone(), "train", "validation", (2000, 1000)),
            comments: vec![
                ("source", "CoNLL-2003 staged locally (train/validation/test)"),
                ("shuffle_seed", "split.shuffle(seed=42).select(range(n)), as the notebook"),
            ],
            inspect: ["train", "validation"]
                .iter()
                .map(|s| (s.to_string(), vec![source.clone(), "--split".into(), s.to_string()]))
                .collect(),
            label_column: "ner_tags",
            describe: format!(
                "`{}` train/validation shuffled with seed 42, first 2,000 / 1,000 sentences (the notebook's subsample)",
                dir.display()
            ),
        }
    }
}

/// Everything that differs between the profiles.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The tiny profile (CI): numbers mean nothing.
    pub tiny: bool,
    /// Run `ft` with `HF_HUB_OFFLINE=1`.
    pub offline: bool,
    /// §10's model and images.
    pub vision: super::vision::VisionPlan,
    /// §3–§5's model.
    pub model_cls: String,
    /// §9's model.
    pub model_ner: String,
    /// §7/§8's causal LM.
    pub model_lm: String,
    /// AG News.
    pub ag: DataPlan,
    /// CoNLL-2003.
    pub conll: DataPlan,
    /// Exercise 1's model (the notebook's BERT); `None`: §4's model from random initialisation
    /// (no second pre-trained checkpoint available).
    pub exercise_1_model: Option<String>,
    /// The sections this call runs (reports read only their folders, never an earlier call's).
    pub ran: Vec<super::Section>,
    /// §11's ACLSum folder (`{train,val,test}.jsonl`), when there is one.
    pub aclsum: Option<std::path::PathBuf>,
    /// The note for §7, §8 and §11 on the local profile's small GPT-2: a warning when it is too
    /// weak for its generations to show anything (judged by its held-out perplexity against a
    /// unigram baseline), else what a model this small can show.
    pub lm_caveat: Option<String>,
}

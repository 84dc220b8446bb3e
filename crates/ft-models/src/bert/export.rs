//! BERT's tensors under the Hub's names (the inverse of [`super::load`]).

use super::heads::{BertForSequenceClassification, BertForTokenClassification};
use super::model::{BertModel, BertResidualOutput};
use crate::Result;
use crate::export::HfTensors;

fn residual(out: &mut HfTensors, name: &str, r: &BertResidualOutput) -> Result<()> {
    out.linear(&format!("{name}.dense"), &r.dense)?;
    out.layer_norm(&format!("{name}.LayerNorm"), &r.layer_norm)
}

impl BertModel {
    /// Adds the encoder's tensors under `prefix` (`"bert."` inside a task model, `""` alone).
    pub fn export(&self, out: &mut HfTensors, prefix: &str) -> Result<()> {
        let p = prefix;
        let e = &self.embeddings;
        out.embedding(&format!("{p}embeddings.word_embeddings"), &e.word_embeddings)?;
        out.embedding(&format!("{p}embeddings.position_embeddings"), &e.position_embeddings)?;
        out.embedding(&format!("{p}embeddings.token_type_embeddings"), &e.token_type_embeddings)?;
        out.layer_norm(&format!("{p}embeddings.LayerNorm"), &e.layer_norm)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let l = format!("{p}encoder.layer.{i}");
            let a = &layer.attention.self_attention;
            out.linear(&format!("{l}.attention.self.query"), &a.query)?;
            out.linear(&format!("{l}.attention.self.key"), &a.key)?;
            out.linear(&format!("{l}.attention.self.value"), &a.value)?;
            residual(out, &format!("{l}.attention.output"), &layer.attention.output)?;
            out.linear(&format!("{l}.intermediate.dense"), &layer.intermediate)?;
            residual(out, &format!("{l}.output"), &layer.output)?;
        }
        if let Some(pooler) = &self.pooler {
            out.linear(&format!("{p}pooler.dense"), &pooler.dense)?;
        }
        Ok(())
    }
}

impl BertForSequenceClassification {
    /// Adds all tensors as transformers names them.
    pub fn export(&self, out: &mut HfTensors) -> Result<()> {
        self.bert.export(out, "bert.")?;
        out.linear("classifier", &self.classifier)
    }
}

impl BertForTokenClassification {
    /// Adds all tensors as transformers names them.
    pub fn export(&self, out: &mut HfTensors) -> Result<()> {
        self.bert.export(out, "bert.")?;
        out.linear("classifier", &self.classifier)
    }
}

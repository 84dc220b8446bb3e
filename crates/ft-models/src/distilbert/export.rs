//! DistilBERT's tensors under the Hub's names (the inverse of [`super::load`]).

use super::heads::{DistilBertForSequenceClassification, DistilBertForTokenClassification};
use super::model::DistilBertModel;
use crate::Result;
use crate::export::HfTensors;

impl DistilBertModel {
    /// Adds the encoder's tensors under `prefix` (`"distilbert."` inside a task model).
    pub fn export(&self, out: &mut HfTensors, prefix: &str) -> Result<()> {
        let p = prefix;
        let e = &self.embeddings;
        out.embedding(&format!("{p}embeddings.word_embeddings"), &e.word_embeddings)?;
        out.embedding(&format!("{p}embeddings.position_embeddings"), &e.position_embeddings)?;
        out.layer_norm(&format!("{p}embeddings.LayerNorm"), &e.layer_norm)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let l = format!("{p}transformer.layer.{i}");
            let a = &layer.attention;
            out.linear(&format!("{l}.attention.q_lin"), &a.q_lin)?;
            out.linear(&format!("{l}.attention.k_lin"), &a.k_lin)?;
            out.linear(&format!("{l}.attention.v_lin"), &a.v_lin)?;
            out.linear(&format!("{l}.attention.out_lin"), &a.out_lin)?;
            out.layer_norm(&format!("{l}.sa_layer_norm"), &layer.sa_layer_norm)?;
            out.linear(&format!("{l}.ffn.lin1"), &layer.ffn.lin1)?;
            out.linear(&format!("{l}.ffn.lin2"), &layer.ffn.lin2)?;
            out.layer_norm(&format!("{l}.output_layer_norm"), &layer.output_layer_norm)?;
        }
        Ok(())
    }
}

impl DistilBertForSequenceClassification {
    /// Adds all tensors as transformers names them.
    pub fn export(&self, out: &mut HfTensors) -> Result<()> {
        self.distilbert.export(out, "distilbert.")?;
        out.linear("pre_classifier", &self.pre_classifier)?;
        out.linear("classifier", &self.classifier)
    }
}

impl DistilBertForTokenClassification {
    /// Adds all tensors as transformers names them.
    pub fn export(&self, out: &mut HfTensors) -> Result<()> {
        self.distilbert.export(out, "distilbert.")?;
        out.linear("classifier", &self.classifier)
    }
}

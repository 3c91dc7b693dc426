//! `[model]`: the detector model, its card, and how ONNX Runtime runs it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Problem;

/// The detector model and how to run it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Path of the `.onnx` file.
    pub path: PathBuf,
    /// Its model card (head, preprocessing, classes); defaults to `NAME.card.toml` beside it.
    #[serde(default)]
    pub card: Option<PathBuf>,
    /// ONNX Runtime intra-op threads; by default one per core but one, which is left to video
    /// decoding (1 on a 2-core box).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// The ONNX Runtime library; defaults to `$ORT_DYLIB_PATH`, then the installed location.
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
    /// Where the model runs: `cpu`, or an accelerator whose build of ONNX Runtime
    /// `onnxruntime` names (`openvino`, `cuda`, `tensorrt`).
    #[serde(default)]
    pub provider: Provider,
    /// The OpenVINO device: `CPU`, `GPU` (the iGPU) or `NPU`.
    #[serde(default = "default_openvino_device")]
    pub openvino_device: String,
}

fn default_openvino_device() -> String {
    "CPU".into()
}

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// ONNX Runtime's own CPU kernels (every build has them).
    #[default]
    Cpu,
    /// Intel's OpenVINO: the CPU, iGPU or NPU of an Intel box (`openvino_device`).
    Openvino,
    /// NVIDIA CUDA.
    Cuda,
    /// NVIDIA TensorRT.
    Tensorrt,
}

impl Provider {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Openvino => "openvino",
            Self::Cuda => "cuda",
            Self::Tensorrt => "tensorrt",
        }
    }
}

/// ONNX Runtime threads by default: every core but one (left to decoding video), at least one.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl ModelConfig {
    /// Makes relative paths relative to `base`.
    pub(super) fn resolve(&mut self, base: &Path) {
        self.path = base.join(&self.path);
        self.onnxruntime = self.onnxruntime.take().map(|p| base.join(p));
        self.card = self.card.take().map(|p| base.join(p));
    }
}

impl ModelConfig {
    pub(super) fn problems(&self, p: &mut Vec<Problem>) {
        if self.threads == 0 {
            p.push(Problem::new("model.threads", "must be at least 1"));
        }
        if !["CPU", "GPU", "NPU"].iter().any(|d| self.openvino_device.starts_with(d)) {
            p.push(Problem::new(
                "model.openvino_device",
                "must be CPU, GPU (GPU.0, GPU.1…) or NPU",
            ));
        }
    }
}

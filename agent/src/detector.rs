//! The object detector: one ONNX Runtime session, a reused input tensor, and the head decoder.
//!
//! Inputs and outputs are bound once (IoBinding) to tensors allocated at load time, so a
//! detection writes into the same memory every frame and allocates nothing for tensors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use crate::detection::{Detection, nms_classwise};
use crate::nanodet::NanodetHead;
use crate::preprocess::{ChannelOrder, Normalization, Preprocessor};
use crate::yuv::Yuv;

/// Where the installer puts the ONNX Runtime library on an edge box.
pub const INSTALLED_ORT_LIBRARY: &str = "/usr/lib/xueliang/libonnxruntime.so.1";

/// Why the detector could not be made or run.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// ONNX Runtime itself is missing or unusable.
    #[error("ONNX Runtime library {path}: {message}")]
    Runtime { path: PathBuf, message: String },
    /// The model file is absent.
    #[error("model file {0} not found (run `make setup`, or fix model.path)")]
    ModelMissing(PathBuf),
    /// ONNX Runtime refused the model file.
    #[error("model file {path} is not a usable ONNX model: {message}")]
    ModelInvalid { path: PathBuf, message: String },
    /// The model loads but its inputs or outputs are not of the configured kind.
    #[error("model {path}: {message}")]
    ModelLayout { path: PathBuf, message: String },
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// NanoDet's normalization (from its model card): BGR, ImageNet-style mean and std on 0..255.
pub const NANODET_NORMALIZATION: Normalization = Normalization {
    order: ChannelOrder::Bgr,
    mean: [103.53, 116.28, 123.675],
    std: [57.375, 57.12, 58.395],
};

/// Time spent in each stage of one detection.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Frame → input tensor.
    pub preprocess: Duration,
    /// `session.run`.
    pub infer: Duration,
    /// Head decode and NMS.
    pub postprocess: Duration,
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The ONNX Runtime library to load: the configured one, `$ORT_DYLIB_PATH`, or the installed one.
pub fn ort_library(configured: Option<&Path>) -> PathBuf {
    configured
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(INSTALLED_ORT_LIBRARY))
}

/// Loads ONNX Runtime once per process (ORT allows one environment per process).
fn environment(library: &Path) -> Result<&'static Environment, DetectorError> {
    let env = ENVIRONMENT.get_or_init(|| {
        if !library.exists() {
            return Err(format!(
                "not found (run `make setup`, set ORT_DYLIB_PATH, or set model.onnxruntime) at {}",
                library.display()
            ));
        }
        let builder = ort::init_from(library).map_err(|e| e.to_string())?;
        builder
            .with_name("xueliang")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| DetectorError::Runtime {
        path: library.to_owned(),
        message: message.clone(),
    })
}

/// A loaded model ready to detect objects in frames.
pub struct Detector {
    session: Session,
    binding: IoBinding,
    input: Tensor<f32>,
    output_names: Vec<String>,
    head: NanodetHead,
    preprocessor: Preprocessor,
    /// Score below which candidates are discarded before NMS.
    pub score_threshold: f32,
    /// IoU above which a box is suppressed by a better one of its class.
    pub nms_iou: f32,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("outputs", &self.output_names)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads a NanoDet-layout model with `threads` intra-op threads.
    pub fn load_nanodet(
        model: &Path,
        library: &Path,
        threads: usize,
    ) -> Result<Self, DetectorError> {
        let env = environment(library)?;
        if !model.is_file() {
            return Err(DetectorError::ModelMissing(model.to_owned()));
        }
        let invalid = |e: ort::Error| DetectorError::ModelInvalid {
            path: model.to_owned(),
            message: e.to_string(),
        };
        let layout = |message: String| DetectorError::ModelLayout {
            path: model.to_owned(),
            message,
        };
        let session = Session::builder(env)
            .map_err(|e| invalid(e))?
            .with_intra_threads(threads)
            .map_err(|e| invalid(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| invalid(e.into()))?
            // Spinning threads steal the core the video decoder needs.
            .with_intra_op_spinning(false)
            .map_err(|e| invalid(e.into()))?
            .commit_from_file(model)
            .map_err(invalid)?;

        let [input_outlet] = session.inputs() else {
            return Err(layout(format!(
                "has {} inputs, expected one image input",
                session.inputs().len()
            )));
        };
        let shape = input_outlet
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let (height, width) = match shape.as_slice() {
            [1 | -1, 3, h, w] if *h > 0 && *w > 0 => (*h as usize, *w as usize),
            other => {
                return Err(layout(format!(
                    "input {:?} has shape {other:?}, expected [1, 3, H, W]",
                    input_outlet.name()
                )));
            }
        };
        let input_name = input_outlet.name().to_owned();
        let output_shapes: Vec<Vec<i64>> = session
            .outputs()
            .iter()
            .map(|o| o.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default())
            .collect();
        let head = NanodetHead::from_output_shapes(&output_shapes, width, height)
            .map_err(|m| layout(format!("not a NanoDet head: {m}")))?;
        let output_names: Vec<String> =
            session.outputs().iter().map(|o| o.name().to_owned()).collect();

        let run_err = |e: ort::Error| DetectorError::Run(e.to_string());
        let input = Tensor::<f32>::new(session.allocator(), [1usize, 3, height, width])
            .map_err(run_err)?;
        let mut binding = session.create_binding().map_err(run_err)?;
        binding.bind_input(input_name, &input).map_err(run_err)?;
        for (name, shape) in output_names.iter().zip(&output_shapes) {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let t = Tensor::<f32>::new(session.allocator(), dims).map_err(run_err)?;
            binding.bind_output(name.clone(), t).map_err(run_err)?;
        }
        Ok(Self {
            session,
            binding,
            input,
            output_names,
            head,
            preprocessor: Preprocessor::new(width, height, NANODET_NORMALIZATION),
            score_threshold: 0.3,
            nms_iou: 0.6,
        })
    }

    /// The model's input size (width, height).
    pub fn input_size(&self) -> (usize, usize) {
        let l = &self.head.levels[0];
        (l.cols * l.stride, l.rows * l.stride)
    }

    /// Number of classes the model knows.
    pub fn class_count(&self) -> usize {
        self.head.classes
    }

    /// Detects objects in `img`; results (after NMS) replace the contents of `out`, whose
    /// capacity is reused from frame to frame.
    pub fn detect(
        &mut self,
        img: &Yuv<'_>,
        out: &mut Vec<Detection>,
    ) -> Result<StageTimes, DetectorError> {
        let t0 = Instant::now();
        let (_, data) = self.input.extract_tensor_mut();
        self.preprocessor.run(img, data);
        let t1 = Instant::now();
        let outputs = self
            .session
            .run_binding(&self.binding)
            .map_err(|e| DetectorError::Run(e.to_string()))?;
        let t2 = Instant::now();
        out.clear();
        for level in &self.head.levels {
            let scores = outputs[self.output_names[level.scores].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| DetectorError::Run(e.to_string()))?
                .1;
            let boxes = outputs[self.output_names[level.boxes].as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| DetectorError::Run(e.to_string()))?
                .1;
            self.head
                .decode_level(level, scores, boxes, self.score_threshold, out);
        }
        nms_classwise(out, self.nms_iou);
        Ok(StageTimes {
            preprocess: t1 - t0,
            infer: t2 - t1,
            postprocess: t2.elapsed(),
        })
    }
}

//! The object detector: one ONNX Runtime session, reused input tensors, and the head decoder.
//!
//! Inputs and outputs are bound once (IoBinding) to tensors allocated at load time, one set per
//! batch size, so a detection writes into the same memory every frame and allocates nothing for
//! tensors. Models with a dynamic batch dimension take frames of several cameras in one run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use super::detection::{Detection, nms_classwise};
use super::heads::Head;
use super::model_card::{CardError, ModelCard};
use super::preprocess::Preprocessor;
use super::regions::{Tiling, WHOLE};
use crate::config::{ModelConfig, Provider};
use crate::geometry::BoxN;
use crate::source::Yuv;

/// Where the installer puts the ONNX Runtime library on an edge box.
pub const INSTALLED_ORT_LIBRARY: &str = "/usr/lib/xueliang/libonnxruntime.so.1";

/// Why the detector could not be made or run.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// ONNX Runtime itself is missing or unusable.
    #[error("ONNX Runtime library {path}: {message}")]
    Runtime {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model file is absent.
    #[error("model file {0} not found (run `make setup`, or fix model.path)")]
    ModelMissing(PathBuf),
    /// ONNX Runtime refused the model file.
    #[error("model file {path} is not a usable ONNX model: {message}")]
    ModelInvalid {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model loads but its inputs or outputs are not of the configured kind.
    #[error("model {path}: {message}")]
    ModelLayout {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The configured execution provider is not in the ONNX Runtime library, or cannot run
    /// on this machine.
    #[error(
        "model.provider = \"{provider}\" cannot run with the ONNX Runtime library {path}: {message} (set model.onnxruntime to a build of ONNX Runtime with that provider, or model.provider = \"cpu\")"
    )]
    Provider {
        /// The provider's config name.
        provider: &'static str,
        /// The library.
        path: PathBuf,
        /// What ONNX Runtime said.
        message: String,
    },
    /// The model's card is missing or wrong.
    #[error(transparent)]
    Card(#[from] CardError),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(String),
}

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
            return Err(
                "not found (run `make setup`, set ORT_DYLIB_PATH, or set model.onnxruntime)".into(),
            );
        }
        let builder = ort::init_from(library).map_err(|e| e.to_string())?;
        builder.with_name("xueliang").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| DetectorError::Runtime {
        path: library.to_owned(),
        message: message.clone(),
    })
}

/// Most outputs a supported head has (NanoDet: two per stride, up to four strides).
const MAX_OUTPUTS: usize = 8;

/// One batch size's bound input and outputs.
struct Bound {
    binding: IoBinding,
    input: Tensor<f32>,
}

/// A loaded model ready to detect objects in frames.
pub struct Detector {
    session: Session,
    /// `batches[b - 1]` serves a batch of b images.
    batches: Vec<Bound>,
    input_name: String,
    output_names: Vec<String>,
    head: Head,
    card: ModelCard,
    /// One per batch slot: each camera's frame size gives its own letterbox.
    preprocessors: Vec<Preprocessor>,
    input_size: (usize, usize),
    /// Score below which candidates are discarded before NMS.
    pub score_threshold: f32,
    /// IoU above which a box is suppressed by a better one of its class.
    pub nms_iou: f32,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.card.name)
            .field("outputs", &self.output_names)
            .field("head", &self.head)
            .field("max_batch", &self.batches.len())
            .finish_non_exhaustive()
    }
}

/// Options for loading a detector.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// The ONNX Runtime library.
    pub library: PathBuf,
    /// Intra-op threads.
    pub threads: usize,
    /// Largest batch to prepare when the model's batch dimension is dynamic.
    pub max_batch: usize,
    /// Where the model runs.
    pub provider: Provider,
    /// The OpenVINO device, with that provider.
    pub openvino_device: String,
}

impl DetectorOptions {
    /// On the CPU with `threads` threads, batches up to `max_batch`, ONNX Runtime from `library`.
    pub fn cpu(library: PathBuf, threads: usize, max_batch: usize) -> Self {
        Self { library, threads, max_batch, provider: Provider::Cpu, openvino_device: "CPU".into() }
    }

    /// As `model` says (library, threads, provider), batches up to `max_batch`.
    pub fn of(model: &ModelConfig, max_batch: usize) -> Self {
        Self {
            library: ort_library(model.onnxruntime.as_deref()),
            threads: model.threads,
            max_batch,
            provider: model.provider,
            openvino_device: model.openvino_device.clone(),
        }
    }

    /// The execution provider to register, none for the CPU's own kernels.
    fn execution_provider(&self) -> Option<ExecutionProviderDispatch> {
        let ep = match self.provider {
            Provider::Cpu => return None,
            Provider::Openvino => ep::OpenVINO::default()
                .with_device_type(&self.openvino_device)
                .with_num_threads(self.threads.max(1))
                .build(),
            Provider::Cuda => ep::CUDA::default().build(),
            Provider::Tensorrt => ep::TensorRT::default().build(),
        };
        // A provider that cannot run is an error, not a silent fall back to the CPU.
        Some(ep.error_on_failure())
    }
}

impl Detector {
    /// Loads `model` with the card at `card` (`NAME.card.toml` beside it when `None`): a
    /// missing model is named before a missing card.
    pub fn open(
        model: &Path,
        card: Option<&Path>,
        options: &DetectorOptions,
    ) -> Result<Self, DetectorError> {
        if !model.is_file() {
            return Err(DetectorError::ModelMissing(model.to_owned()));
        }
        let card_path = card.map_or_else(|| ModelCard::default_path(model), Path::to_owned);
        Self::load(model, ModelCard::load(&card_path)?, options)
    }

    /// Loads `model` as its `card` describes it; the model is run once here on a blank image,
    /// so a model that cannot run fails at start-up rather than at the first frame.
    pub fn load(
        model: &Path,
        card: ModelCard,
        options: &DetectorOptions,
    ) -> Result<Self, DetectorError> {
        let env = environment(&options.library)?;
        if !model.is_file() {
            return Err(DetectorError::ModelMissing(model.to_owned()));
        }
        let invalid = |e: ort::Error| DetectorError::ModelInvalid {
            path: model.to_owned(),
            message: e.to_string(),
        };
        let layout =
            |message: String| DetectorError::ModelLayout { path: model.to_owned(), message };
        let mut builder = Session::builder(env)
            .map_err(&invalid)?
            .with_intra_threads(options.threads.max(1))
            .map_err(|e| invalid(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| invalid(e.into()))?
            // Spinning threads steal the core the video decoder needs.
            .with_intra_op_spinning(false)
            .map_err(|e| invalid(e.into()))?;
        if let Some(ep) = options.execution_provider() {
            builder =
                builder.with_execution_providers([ep]).map_err(|e| DetectorError::Provider {
                    provider: options.provider.name(),
                    path: options.library.clone(),
                    message: e.to_string(),
                })?;
        }
        // The model is compiled for the provider here, and run once below: a model the
        // provider cannot run fails at start-up.
        let mut session = builder.commit_from_file(model).map_err(invalid)?;

        let [input_outlet] = session.inputs() else {
            return Err(layout(format!(
                "has {} inputs, expected one image input",
                session.inputs().len()
            )));
        };
        let shape = input_outlet.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        let (dynamic_batch, height, width) = match shape.as_slice() {
            [b @ (1 | -1), 3, h, w] if *h > 0 && *w > 0 => (*b == -1, *h as usize, *w as usize),
            other => {
                return Err(layout(format!(
                    "input {:?} has shape {other:?}, expected [1, 3, H, W] (an RGB image of fixed size)",
                    input_outlet.name()
                )));
            }
        };
        if let Some((cw, ch)) = card.input_size
            && (cw, ch) != (width, height)
        {
            return Err(layout(format!(
                "input is {width}x{height} but its model card says {cw}x{ch}: the card belongs to another model"
            )));
        }
        let input_name = input_outlet.name().to_owned();
        let output_names: Vec<String> =
            session.outputs().iter().map(|o| o.name().to_owned()).collect();
        if output_names.len() > MAX_OUTPUTS {
            return Err(layout(format!(
                "has {} outputs; detector heads have at most {MAX_OUTPUTS}",
                output_names.len()
            )));
        }

        // One run on a blank image proves the model runs and gives concrete output shapes.
        let run_err = |e: ort::Error| DetectorError::Run(e.to_string());
        let blank =
            Tensor::<f32>::new(session.allocator(), [1usize, 3, height, width]).map_err(run_err)?;
        let output_shapes: Vec<Vec<i64>> = {
            let outputs =
                session.run(ort::inputs![input_name.as_str() => &blank]).map_err(&invalid)?;
            let mut shapes = Vec::with_capacity(output_names.len());
            for n in &output_names {
                let value = &outputs[n.as_str()];
                if value.try_extract_tensor::<f32>().is_err() {
                    return Err(layout(format!("output {n:?} is not a float32 tensor")));
                }
                shapes.push(value.shape().to_vec());
            }
            shapes
        };
        let head = Head::new(card.head, &output_shapes, width, height, card.classes.len())
            .map_err(layout)?;

        let max_batch = if dynamic_batch { options.max_batch.clamp(1, 8) } else { 1 };
        let mut batches = Vec::with_capacity(max_batch);
        for b in 1..=max_batch {
            let input =
                Tensor::<f32>::new(session.allocator(), [b, 3, height, width]).map_err(run_err)?;
            let mut binding = session.create_binding().map_err(run_err)?;
            binding.bind_input(input_name.clone(), &input).map_err(run_err)?;
            for (name, shape) in output_names.iter().zip(&output_shapes) {
                let mut dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                if let Some(d0) = dims.first_mut() {
                    *d0 = b;
                }
                let t = Tensor::<f32>::new(session.allocator(), dims).map_err(run_err)?;
                binding.bind_output(name.clone(), t).map_err(run_err)?;
            }
            batches.push(Bound { binding, input });
        }
        let preprocessors = (0..max_batch)
            .map(|_| Preprocessor::new(width, height, card.normalization, card.resize))
            .collect();
        // The bound path the frames take is proven here too, not at the first frame.
        session.run_binding(&batches[0].binding).map_err(invalid)?;
        Ok(Self {
            session,
            batches,
            input_name,
            output_names,
            head,
            card,
            preprocessors,
            input_size: (width, height),
            score_threshold: 0.3,
            nms_iou: 0.6,
        })
    }

    /// The model's input size (width, height).
    pub fn input_size(&self) -> (usize, usize) {
        self.input_size
    }

    /// The model card the detector runs by.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The largest batch one inference takes (1 unless the model's batch size is dynamic).
    pub fn max_batch(&self) -> usize {
        self.batches.len()
    }

    /// Writes the `tile` (normalized) of `img` into slot `slot` of the input of a
    /// `batch`-image inference.
    ///
    /// # Panics
    /// If `batch` exceeds [`Self::max_batch`] or `slot` ≥ `batch` (programming errors).
    pub fn prepare(&mut self, batch: usize, slot: usize, img: &Yuv<'_>, tile: BoxN) {
        let pre = &mut self.preprocessors[slot];
        let len = pre.len();
        let (_, data) = self.batches[batch - 1].input.extract_tensor_mut();
        pre.run(img, tile, &mut data[slot * len..][..len]);
    }

    /// Runs a `batch`-image inference on the prepared slots; `outs[i]` receives image i's
    /// detections (after NMS, normalized frame coordinates), reusing its capacity.
    pub fn infer(
        &mut self,
        batch: usize,
        outs: &mut [Vec<Detection>],
    ) -> Result<(Duration, Duration), DetectorError> {
        let t0 = Instant::now();
        let outputs = self
            .session
            .run_binding(&self.batches[batch - 1].binding)
            .map_err(|e| DetectorError::Run(e.to_string()))?;
        let t1 = Instant::now();
        let mut slices: [&[f32]; MAX_OUTPUTS] = [&[]; MAX_OUTPUTS];
        let n_out = self.output_names.len();
        let mut whole: [&[f32]; MAX_OUTPUTS] = [&[]; MAX_OUTPUTS];
        for (k, name) in self.output_names.iter().take(n_out).enumerate() {
            whole[k] = outputs[name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| DetectorError::Run(e.to_string()))?
                .1;
        }
        for (i, out) in outs.iter_mut().take(batch).enumerate() {
            for k in 0..n_out {
                let per = whole[k].len() / batch;
                slices[k] = &whole[k][i * per..][..per];
            }
            out.clear();
            self.head.decode(&slices[..n_out], self.score_threshold, out);
            let content = self.preprocessors[i].content();
            for d in out.iter_mut() {
                let b = d.bbox;
                d.bbox = content.to_frame(b.x1, b.y1, b.x2, b.y2);
            }
            nms_classwise(out, self.nms_iou);
        }
        Ok((t1 - t0, t1.elapsed()))
    }

    /// Detects objects in one image; results (after NMS) replace the contents of `out`, whose
    /// capacity is reused from frame to frame.
    pub fn detect(
        &mut self,
        img: &Yuv<'_>,
        out: &mut Vec<Detection>,
    ) -> Result<StageTimes, DetectorError> {
        let t0 = Instant::now();
        self.prepare(1, 0, img, WHOLE);
        let preprocess = t0.elapsed();
        let (infer, postprocess) = self.infer(1, std::slice::from_mut(out))?;
        Ok(StageTimes { preprocess, infer, postprocess })
    }

    /// Detects objects in the tiles of one image that `tiling` lays out, batched as the model
    /// allows; `out` receives them mapped to the frame and suppressed across tiles.
    pub fn detect_tiles(
        &mut self,
        img: &Yuv<'_>,
        tiling: &mut Tiling,
        out: &mut Vec<Detection>,
    ) -> Result<(), DetectorError> {
        out.clear();
        let tiles = tiling.tiles((img.width, img.height), self.input_size).to_vec();
        let mut parts = vec![Vec::new(); self.max_batch()];
        for chunk in tiles.chunks(self.max_batch()) {
            for (slot, tile) in chunk.iter().enumerate() {
                self.prepare(chunk.len(), slot, img, *tile);
            }
            self.infer(chunk.len(), &mut parts)?;
            for (part, tile) in parts.iter_mut().zip(chunk) {
                tiling.keep_whole(*tile, part);
                out.extend_from_slice(part);
            }
        }
        if tiles.len() > 1 {
            nms_classwise(out, self.nms_iou);
        }
        Ok(())
    }

    /// Times `runs` bare `session.run` calls on the last prepared single image, the way a
    /// minimal program would call ONNX Runtime: the baseline the detection loop is measured
    /// against.
    pub fn time_bare_runs(&mut self, runs: usize) -> Result<Duration, DetectorError> {
        let err = |e: ort::Error| DetectorError::Run(e.to_string());
        let (w, h) = self.input_size;
        let mut input =
            Tensor::<f32>::new(self.session.allocator(), [1usize, 3, h, w]).map_err(err)?;
        input.extract_tensor_mut().1.copy_from_slice(self.batches[0].input.extract_tensor().1);
        let t0 = Instant::now();
        for _ in 0..runs {
            let outputs =
                self.session.run(ort::inputs![self.input_name.as_str() => &input]).map_err(err)?;
            std::hint::black_box(&outputs);
        }
        Ok(t0.elapsed())
    }
}

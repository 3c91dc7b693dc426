//! Frames → detections: the motion gate, the watched area and its tiles, preprocessing into the
//! model's input, the ONNX Runtime session, the output heads (NanoDet, YOLO) chosen by the model
//! card, and class-wise NMS; the inference loop that decides which camera's frame is inferred
//! next.

mod classes;
mod detection;
mod detector;
pub mod heads;
mod inference;
mod model_card;
mod motion;
mod preprocess;
mod regions;

pub use detection::{Detection, nms_classwise};
pub use detector::{
    Detector, DetectorError, DetectorOptions, INSTALLED_ORT_LIBRARY, StageTimes, ort_library,
};
pub use inference::{CameraLoopStats, CameraSlot, InferenceLoop, LoopStats};
pub use model_card::{CardError, HeadKind, ModelCard};
pub use motion::{MotionGate, MotionSettings};
pub use preprocess::{ChannelOrder, Normalization, Preprocessor, Resize};
pub use regions::{Tiling, WHOLE};

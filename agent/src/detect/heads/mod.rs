//! The model's output decoders (NanoDet, Ultralytics YOLO), chosen by the model card and checked
//! against the output shapes.

mod nanodet;
mod yolo;

use super::detection::Detection;
use super::model_card::HeadKind;
use nanodet::NanodetHead;
use yolo::YoloHead;

/// A head decoder matched to a model's outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// NanoDet per-stride outputs.
    Nanodet(NanodetHead),
    /// Ultralytics YOLO single output.
    Yolo(YoloHead),
}

impl Head {
    /// Matches the outputs (`shapes` for one image, in output order) of a `width`×`height`-input
    /// model to the card's head kind and class count.
    pub fn new(
        kind: HeadKind,
        shapes: &[Vec<i64>],
        width: usize,
        height: usize,
        classes: usize,
    ) -> Result<Self, String> {
        match kind {
            HeadKind::Nanodet => {
                let head = NanodetHead::from_output_shapes(shapes, width, height)
                    .map_err(|m| format!("outputs {shapes:?} are not a NanoDet head: {m}"))?;
                if head.classes != classes {
                    return Err(format!(
                        "outputs have {} classes but the card lists {classes}",
                        head.classes
                    ));
                }
                Ok(Self::Nanodet(head))
            }
            HeadKind::Yolo => YoloHead::from_output_shapes(shapes, classes)
                .map(Self::Yolo)
                .map_err(|m| format!("not a YOLO head: {m}")),
        }
    }

    /// Appends one image's candidates with score ≥ `threshold` to `out`, boxes in input pixels;
    /// `outputs` are that image's slices of the model outputs, in output order.
    pub fn decode(&self, outputs: &[&[f32]], threshold: f32, out: &mut Vec<Detection>) {
        match self {
            Self::Nanodet(head) => {
                for level in &head.levels {
                    head.decode_level(
                        level,
                        outputs[level.scores],
                        outputs[level.boxes],
                        threshold,
                        out,
                    );
                }
            }
            Self::Yolo(head) => head.decode(outputs[0], threshold, out),
        }
    }
}

//! Model cards: what the agent must know to run a detector model, kept beside the `.onnx` file.
//!
//! The card names the head layout (which decoder reads the outputs), the preprocessing the
//! model was trained with, and its class names. A model without a card is refused: guessing the
//! channel order or the normalization silently costs most of a detector's accuracy.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::classes::COCO;
use super::preprocess::{ChannelOrder, Normalization, Resize};

/// Why a model card was refused.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card file could not be read.
    #[error(
        "model card {path}: {error} (every model needs a card beside it; see models/README.md)"
    )]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The card does not parse or its values are out of range.
    #[error("model card {path}: {message}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The decoder for the model's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// NanoDet: per-stride class scores `[1, N, C]` and box distributions `[1, N, 4·bins]`.
    Nanodet,
    /// Ultralytics YOLO: `[1, 4 + C, N]` (v8, v11) or `[1, N, 5 + C]` (v5, with objectness).
    Yolo,
}

/// Channel order as written in a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Channels {
    Rgb,
    Bgr,
}

/// How a frame is fitted into the model input, as written in a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fit {
    Stretch,
    Letterbox,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSection {
    #[serde(default)]
    size: Option<[usize; 2]>,
    resize: Fit,
    channels: Channels,
    #[serde(default)]
    mean: [f32; 3],
    #[serde(default = "unit_std")]
    std: [f32; 3],
    #[serde(default = "default_pad")]
    pad: u8,
}

fn unit_std() -> [f32; 3] {
    [1.0; 3]
}
fn default_pad() -> u8 {
    114
}

/// Class names: the 80 COCO names, or the model's own list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ClassesSection {
    Named(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    name: String,
    version: String,
    head: HeadKind,
    input: InputSection,
    classes: ClassesSection,
}

/// A parsed, checked model card.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// Model id reported in alarms.
    pub name: String,
    /// Model version reported in alarms.
    pub version: String,
    /// Output decoder.
    pub head: HeadKind,
    /// The input size (width, height) the model must have, when the card states it.
    pub input_size: Option<(usize, usize)>,
    /// How frames are fitted into the input.
    pub resize: Resize,
    /// Channel order and per-channel normalization.
    pub normalization: Normalization,
    /// Class names in output order.
    pub classes: Vec<String>,
}

impl ModelCard {
    /// Where the card of `model` is looked for when the config names none:
    /// `name.onnx` → `name.card.toml` in the same directory.
    pub fn default_path(model: &Path) -> PathBuf {
        model.with_extension("card.toml")
    }

    /// Reads and checks the card at `path`.
    pub fn load(path: &Path) -> Result<Self, CardError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| CardError::Read { path: path.to_owned(), error })?;
        Self::parse(&text).map_err(|message| CardError::Invalid { path: path.to_owned(), message })
    }

    /// Parses and checks card text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let card: CardFile =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let classes = match card.classes {
            ClassesSection::Named(n) if n == "coco" => COCO.iter().map(|s| s.to_string()).collect(),
            ClassesSection::Named(n) => {
                return Err(format!("classes = {n:?}: write \"coco\" or a list of class names"));
            }
            ClassesSection::List(l) if l.is_empty() => return Err("classes is empty".into()),
            ClassesSection::List(l) => l,
        };
        if card.input.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(format!("input.std {:?} must be positive", card.input.std));
        }
        Ok(Self {
            name: card.name,
            version: card.version,
            head: card.head,
            input_size: card.input.size.map(|[w, h]| (w, h)),
            resize: match card.input.resize {
                Fit::Stretch => Resize::Stretch,
                Fit::Letterbox => Resize::Letterbox { pad: card.input.pad },
            },
            normalization: Normalization {
                order: match card.input.channels {
                    Channels::Rgb => ChannelOrder::Rgb,
                    Channels::Bgr => ChannelOrder::Bgr,
                },
                mean: card.input.mean,
                std: card.input.std,
            },
            classes,
        })
    }

    /// Index of the class called `name`.
    pub fn class_index(&self, name: &str) -> Option<u16> {
        self.classes.iter().position(|c| c == name).map(|i| i as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_nanodet_card_parses() {
        let text = include_str!("../../../models/nanodet_g416_coco.card.toml");
        let card = ModelCard::parse(text).unwrap();
        assert_eq!(card.head, HeadKind::Nanodet);
        assert_eq!(card.resize, Resize::Stretch);
        assert_eq!(card.normalization.order, ChannelOrder::Bgr);
        assert_eq!(card.classes.len(), 80);
        assert_eq!(card.class_index("person"), Some(0));
    }

    #[test]
    fn a_yolo_card_with_its_own_classes() {
        let card = ModelCard::parse(
            r#"name = "fire"
version = "3"
head = "yolo"
classes = ["fire", "smoke"]
[input]
resize = "letterbox"
channels = "rgb"
std = [255, 255, 255]
"#,
        )
        .unwrap();
        assert_eq!(card.resize, Resize::Letterbox { pad: 114 });
        assert_eq!(card.class_index("smoke"), Some(1));
    }

    #[test]
    fn mistakes_are_named() {
        let err = ModelCard::parse("name = \"x\"\nversion = \"1\"\nhead = \"ssd\"\n").unwrap_err();
        assert!(err.contains("ssd"), "{err}");
        let err = ModelCard::parse(
            "name = \"x\"\nversion = \"1\"\nhead = \"yolo\"\nclasses = \"voc\"\n[input]\nresize = \"stretch\"\nchannels = \"rgb\"\n",
        )
        .unwrap_err();
        assert!(err.contains("voc"), "{err}");
    }
}

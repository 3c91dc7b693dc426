//! MOTChallenge ground truth (`frame,id,x,y,w,h,flag,…`, pixels, frames from 1): the labels
//! `xl-agent eval` measures the detector against.

use std::collections::HashMap;
use std::path::Path;

/// One labelled box, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtBox {
    /// The labelled object's id (one per person through the sequence).
    pub id: u32,
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
    /// Flag 0 rows: a region where detections count neither for nor against the detector.
    pub ignore: bool,
}

/// All boxes of a sequence, by frame number (the first frame is 1).
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    frames: HashMap<u32, Vec<GtBox>>,
}

impl GroundTruth {
    /// Reads a `gt.txt` file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("ground truth {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("ground truth {}: {e}", path.display()))
    }

    /// Parses MOT text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut gt = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let num = |i: usize| -> Result<f32, String> {
                f.get(i)
                    .ok_or_else(|| format!("line {}: expected frame,id,x,y,w,h,flag,…", n + 1))?
                    .parse::<f32>()
                    .map_err(|e| format!("line {}: field {}: {e}", n + 1, i + 1))
            };
            let frame = num(0)?;
            if frame < 1.0 {
                return Err(format!("line {}: frame {frame} (frames count from 1)", n + 1));
            }
            let (x, y, w, h) = (num(2)?, num(3)?, num(4)?, num(5)?);
            let flag = if f.len() > 6 { num(6)? } else { 1.0 };
            gt.frames.entry(frame as u32).or_default().push(GtBox {
                id: num(1)? as u32,
                x1: x,
                y1: y,
                x2: x + w,
                y2: y + h,
                ignore: flag == 0.0,
            });
        }
        Ok(gt)
    }

    /// The boxes of frame `frame` (1-based).
    pub fn frame(&self, frame: u32) -> &[GtBox] {
        self.frames.get(&frame).map_or(&[], Vec::as_slice)
    }

    /// Each object's boxes in frame order, by id: its track through the sequence.
    pub fn tracks(&self) -> std::collections::BTreeMap<u32, Vec<(u32, GtBox)>> {
        let mut tracks: std::collections::BTreeMap<u32, Vec<(u32, GtBox)>> = Default::default();
        for (&frame, boxes) in &self.frames {
            for b in boxes.iter().filter(|b| !b.ignore) {
                tracks.entry(b.id).or_default().push((frame, *b));
            }
        }
        for t in tracks.values_mut() {
            t.sort_by_key(|(f, _)| *f);
        }
        tracks
    }

    /// The last labelled frame.
    pub fn last_frame(&self) -> u32 {
        self.frames.keys().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_boxes_and_ignore_flags() {
        let gt = GroundTruth::parse(
            "1,9,499,158,31,75,1,-4.1,-7.3,0\n1,2,10,10,5,5,0,0,0,0\n3,9,1,2,3,4,1\n",
        )
        .unwrap();
        assert_eq!(gt.frame(1).len(), 2);
        assert_eq!(gt.frame(1)[0].x2, 530.0);
        assert!(gt.frame(1)[1].ignore);
        assert!(gt.frame(2).is_empty());
        assert_eq!(gt.last_frame(), 3);
        let tracks = gt.tracks();
        assert_eq!(tracks[&9].iter().map(|(f, _)| *f).collect::<Vec<_>>(), [1, 3]);
        assert!(!tracks.contains_key(&2), "ignore regions are not objects");
    }

    #[test]
    fn errors_name_the_line() {
        let err = GroundTruth::parse("1,1,1,1,1,1,1\n2,x,1\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }
}

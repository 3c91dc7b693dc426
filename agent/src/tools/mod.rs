//! The installers' and measurers' commands, built from the stages: `doctor`, `probe-camera`,
//! `enroll`, `replay`, `bench` and `eval`.

pub mod bench;
pub mod doctor;
pub mod enroll;
pub mod eval;
pub mod measure;
pub mod probe;
pub mod replay;

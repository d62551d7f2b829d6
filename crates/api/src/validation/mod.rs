//! Object validation with upstream's field paths and messages (`pkg/apis/*/validation`).

pub mod names;

//! Placeholder (the CLI's .npz files).

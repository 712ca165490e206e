//! The examples' one font: DejaVu Sans, registered with plotters at run time as `sans-serif`.
//! Without it the pictures are drawn with no text at all.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// The font file of every text in the pictures (Debian's `fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers [`FONT`] as plotters' `sans-serif` (once per process); false if the file is missing
/// or unreadable, and then the pictures must be drawn without text.
pub fn register_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let Ok(bytes) = std::fs::read(FONT) else { return false };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

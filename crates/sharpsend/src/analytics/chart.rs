//! Pure SVG chart renderers (filled in below).

"""Reports: paper-layout tables (Markdown, LaTeX, CSV), perception-distortion plots, paired statistics."""
